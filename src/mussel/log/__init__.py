"""The write log: where every acknowledged write is durable before it is acknowledged."""

from mussel.log.base import LogConsumer, LogEntry, WriteLog, partition_for
from mussel.log.local import LocalLog
from mussel.log.memory import MemoryLog

__all__ = ["LocalLog", "LogConsumer", "LogEntry", "MemoryLog", "WriteLog", "partition_for"]

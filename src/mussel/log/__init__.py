"""The write log: where every acknowledged write is durable before it is acknowledged."""

from mussel.log.base import LogConsumer, LogEntry, WriteLog, partition_for

__all__ = ["LogConsumer", "LogEntry", "WriteLog", "partition_for"]

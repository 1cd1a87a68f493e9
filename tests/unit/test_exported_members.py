import mussel


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in dir(mussel) if not name.startswith("_")}
    public -= {"catalog", "clock", "codec", "engine", "errors", "limits", "log", "model"}
    public -= {"client", "replay", "storage"}
    public -= {"cli", "dispatch", "expire", "observability", "bulkload"}  # subpackages tests import
    public -= {"integrations"}
    assert mussel.__all__ == sorted(mussel.__all__)
    assert public <= set(mussel.__all__)

from piaowu.core.ids import new_code, new_ulid


def test_ulids_are_unique_opaque_and_time_ordered() -> None:
    ids = [new_ulid() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 26 and i.isalnum() and not i.isdigit() for i in ids)
    # ULIDs made in a later millisecond sort after earlier ones
    import time

    earlier = new_ulid()
    time.sleep(0.002)
    assert new_ulid() > earlier


def test_codes_avoid_confusable_letters() -> None:
    codes = "".join(new_code(12) for _ in range(500))
    assert not set(codes) & set("ILOU")

import gc

from utils.collector import long_lived


def test_long_lived_freezes_what_is_alive_and_gives_it_back_once_outermost():
    assert gc.get_freeze_count() == 0
    kept = [[i] for i in range(100)]
    with long_lived():
        frozen = gc.get_freeze_count()
        assert frozen >= len(kept)
        with long_lived():
            assert gc.get_freeze_count() >= frozen
        assert gc.get_freeze_count() >= frozen  # the inner block gives nothing back
    assert gc.get_freeze_count() == 0


def test_long_lived_gives_the_objects_back_on_an_error():
    try:
        with long_lived():
            raise KeyError("x")
    except KeyError:
        pass
    assert gc.get_freeze_count() == 0

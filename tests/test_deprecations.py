"""Compatibility aliases warn, name their new home and the version that removes them, and still
resolve to the same object until then; the package's own code uses none of them (the suite turns
their warning into an error, pyproject.toml's filterwarnings)."""

import importlib
import warnings

import pytest

import conceptebm.infer as infer
import conceptebm.scenes as scenes
import conceptebm.train as train


@pytest.mark.parametrize("name", sorted(infer._SCENE_ALIASES))
def test_scene_aliases_of_the_engine_warn_and_resolve(name):
    with pytest.warns(DeprecationWarning, match=rf"conceptebm\.infer\.{name} is deprecated and "
                                                r"will be removed in conceptebm 0\.3; import it "
                                                r"from conceptebm\.scenes"):
        alias = getattr(infer, name)
    assert alias is getattr(scenes, name)
    assert name not in infer.__all__  # a star import does not pull deprecated names


@pytest.mark.parametrize("package, name", [(p, n) for p in (train, infer)
                                           for n in sorted(p.MOVED)])
def test_names_a_package_no_longer_lists_warn_and_resolve(package, name):
    home = importlib.import_module(package.MOVED[name])
    with pytest.warns(DeprecationWarning, match=rf"{package.__name__}\.{name} is deprecated .*"
                                                rf"removed in conceptebm 0\.3; import it from "
                                                rf"{package.MOVED[name]}"):
        alias = getattr(package, name)
    assert alias is getattr(home, name) and name not in package.__all__


def test_the_engine_lists_what_a_user_needs():
    assert 20 <= len(infer.__all__) <= 26 and len(set(infer.__all__)) == len(infer.__all__)
    for name in infer.__all__:
        assert getattr(infer, name) is not None  # each listed name resolves without a warning


def test_the_removal_version_is_one_and_later_than_this_one():
    import conceptebm
    from conceptebm.compat import REMOVED_IN

    assert REMOVED_IN == "0.3"
    assert tuple(map(int, conceptebm.__version__.split(".")[:2])) < (0, 3)


def test_an_unknown_name_is_still_an_attribute_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            infer.no_such_thing  # noqa: B018
        with pytest.raises(AttributeError):
            train.no_such_thing  # noqa: B018


@pytest.mark.parametrize("module, old, new", [
    ("conceptebm.compose.calibrate", "fit_temperature", "fit_classifier_temperature"),
    ("conceptebm.compose.generate", "generate", "generate_images"),
])
def test_a_name_that_meant_two_things_was_renamed_and_its_old_spelling_warns(module, old, new):
    mod = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is deprecated .* use "
                                                rf"{module}\.{new}"):
        assert getattr(mod, old) is getattr(mod, new)
    assert old not in mod.__all__ and new in mod.__all__


@pytest.mark.parametrize("package", ["conceptebm.infer", "conceptebm.evaluate", "conceptebm.scenes",
                                     "conceptebm.datasets", "conceptebm.train",
                                     "conceptebm.energies"])
def test_each_package_lists_about_twenty_names_that_all_resolve(package):
    import warnings

    mod = importlib.import_module(package)
    assert 10 <= len(mod.__all__) <= 26 and len(set(mod.__all__)) == len(mod.__all__)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a listed name is never a deprecated one
        for name in mod.__all__:
            getattr(mod, name)

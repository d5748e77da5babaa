"""`braintrust_ollama._patching`, the one way every package patches: the marker is the wrapper's
type, undone exactly, versions checked with packaging, patches installed as modules are imported
while switched on. (Its lock: the concurrent set-ups of test_patching.py.)"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import sys
import textwrap

import pytest
import wrapt
from braintrust_ollama import _patching
from braintrust_ollama._patching import Patch, WhenImported, is_patched, patch, unpatch


def shout(wrapped, instance, args, kwargs):
    return wrapped(*args, **kwargs).upper()


class Greeter:
    def greet(self, name: str) -> str:
        return f"hello {name}"


class LoudGreeter(Greeter):
    pass


@pytest.fixture
def original():
    greet = Greeter.__dict__["greet"]
    yield greet
    Greeter.greet = greet  # type: ignore[method-assign]


def test_a_patch_is_ours_by_type_once_and_undone_to_the_very_object(original):
    assert patch(Greeter, "greet", shout) is True
    assert patch(Greeter, "greet", shout) is True  # idempotent
    wrapper = Greeter.__dict__["greet"]
    assert isinstance(wrapper, _patching.Wrapper) and wrapper.__wrapped__ is original
    assert Greeter().greet("ada") == "HELLO ADA" == LoudGreeter().greet("ada")
    assert is_patched(Greeter, "greet") and not is_patched(LoudGreeter, "greet")

    assert unpatch(Greeter, "greet") is True
    assert Greeter.__dict__["greet"] is original
    assert unpatch(Greeter, "greet") is False  # a second unpatch is harmless
    assert "greet" not in LoudGreeter.__dict__


def test_an_inherited_attribute_is_not_patched_on_the_subclass(original):
    assert patch(LoudGreeter, "greet", shout) is False
    assert "greet" not in LoudGreeter.__dict__


def test_another_librarys_wrapper_is_kept_inside_ours_even_with_our_wrapper_function(original):
    """A wrapt wrapper with the same wrapper function is not ours: only our type marks a patch."""
    theirs = wrapt.FunctionWrapper(original, shout)
    Greeter.greet = theirs  # type: ignore[method-assign]
    assert not is_patched(Greeter, "greet")
    patch(Greeter, "greet", shout)
    assert Greeter.__dict__["greet"].__wrapped__ is theirs
    unpatch(Greeter, "greet")
    assert Greeter.__dict__["greet"] is theirs


def test_one_instance_is_patched_alone_and_unpatched_to_no_attribute_of_its_own(original):
    greeter, other = Greeter(), Greeter()
    patch(Greeter, "greet", shout)  # the class too: the instance's wrapper does not wrap it
    _patching.patch_instance(greeter, "greet", lambda w, i, a, k: w(*a, **k) + "!")
    _patching.patch_instance(greeter, "greet", lambda w, i, a, k: w(*a, **k) + "?")  # no-op
    assert greeter.greet("ada") == "hello ada!"
    assert other.greet("ada") == "HELLO ADA"
    assert unpatch(greeter, "greet") is True
    assert "greet" not in vars(greeter)
    assert greeter.greet("ada") == "HELLO ADA"


def test_a_patch_is_applied_only_to_the_versions_it_names(original, monkeypatch, caplog):
    versions = {"greeter-dist": "1.2.0"}
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: versions.get(name) or real_version(name)
    )
    table = (Patch(f"{__name__}:Greeter.greet", shout, "greeter-dist>=1.3"),)
    with caplog.at_level(logging.WARNING, logger="braintrust_ollama"):
        assert _patching.apply(table) is False
        assert _patching.apply(table) is False
    assert Greeter.__dict__["greet"] is original
    assert [r.getMessage() for r in caplog.records] == [
        "braintrust-ollama: greeter-dist 1.2.0 is installed, but this needs greeter-dist>=1.3: "
        "not patching it"
    ]

    versions["greeter-dist"] = "1.3.0rc1"  # a pre-release of 1.3 is older than 1.3
    assert _patching.apply(table) is False
    versions["greeter-dist"] = "1.10.0"
    assert _patching.apply(table) is True
    assert is_patched(Greeter, "greet")
    _patching.remove(table)
    assert Greeter.__dict__["greet"] is original


def test_a_patch_never_imports_its_module_unless_told_to(tmp_path, monkeypatch):
    (tmp_path / "patching_target_a.py").write_text("def f():\n    return 'f'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    table = (Patch("patching_target_a:f", shout),)
    assert _patching.apply(table) is False
    assert "patching_target_a" not in sys.modules
    try:
        assert _patching.apply(table, load=True) is True
        assert sys.modules["patching_target_a"].f() == "F"
    finally:
        sys.modules.pop("patching_target_a", None)


def test_patches_are_installed_as_modules_are_imported_while_on(tmp_path, monkeypatch, caplog):
    source = "class Target:\n    def name(self):\n        return 'target'\n"
    for module in ("patching_target_b", "patching_target_c", "patching_target_d"):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))

    def broken(module):
        raise RuntimeError("boom")

    installed: list[str] = []
    hooks = WhenImported(
        {
            "patching_target_b": lambda m: installed.append(m.__name__),
            "patching_target_c": lambda m: installed.append(m.__name__),
            "patching_target_d": broken,
        },
        log=logging.getLogger("braintrust_ollama.tests"),
        unaffected="the test",
    )
    try:
        importlib.import_module("patching_target_b")
        hooks.on()
        assert installed == ["patching_target_b"]  # at once: it was imported
        with caplog.at_level(logging.WARNING, logger="braintrust_ollama.tests"):
            importlib.import_module("patching_target_d")  # its installer's failure is not raised
        assert "could not patch patching_target_d" in caplog.text
        hooks.off()
        importlib.import_module("patching_target_c")
        assert installed == ["patching_target_b"]  # imported while off: left alone
        hooks.on()
        assert installed == ["patching_target_b", "patching_target_b", "patching_target_c"]
    finally:
        hooks.off()  # wrapt's hooks stay registered: let them do nothing
        for module in ("patching_target_b", "patching_target_c", "patching_target_d"):
            sys.modules.pop(module, None)

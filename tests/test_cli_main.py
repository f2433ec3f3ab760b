import pytest

from deepstationing.cli.main import build_parser, main


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("phantom", "rules", "evaluate", "view", "demo", "export", "dataset",
                    "model"):
        assert command in out


def test_every_command_has_explanatory_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices, "no sub-commands registered"
    for name, subparser in sub.choices.items():
        assert subparser.description and len(subparser.description) > 40, name
        text = subparser.format_help()
        assert "usage: deepstationing " + name in text


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_a_command_module_that_cannot_be_imported_is_an_error(monkeypatch):
    """Not silently left out of --help: a missing or broken command module is a bug."""
    from deepstationing.cli import main as main_module

    monkeypatch.setattr(main_module, "COMMAND_MODULES",
                        main_module.COMMAND_MODULES + ("no_such_command",))
    with pytest.raises(ModuleNotFoundError, match="deepstationing.cli.no_such_command"):
        main_module.build_parser()

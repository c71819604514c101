"""What users are promised about failures (one line, an exit code, no traceback), and small
readings of a model's layers."""


def one_line_error(result, code=2):
    """Asserts a finished subprocess failed as users are promised: exit `code`, one line on stderr
    starting "error: ", no traceback. Returns that line."""
    assert result.returncode == code, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def one_line_error_in_process(main, args, capsys, code=2, *, no_output=False):
    """The same promise as one_line_error, for a command-line `main(args)` called in this process
    (a traceback would surface as the exception itself); with no_output, nothing on stdout either.
    Returns the line."""
    try:
        returned = main(args)
    except SystemExit as exit:  # argparse's errors (keras_resnet.cli.ArgumentParser): one line, exit 2
        returned = exit.code
    assert returned == code
    captured = capsys.readouterr()
    assert not no_output or captured.out == "", captured.out
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def layer_names(model):
    return [layer.name for layer in model.layers]


def layers_of_type(model, type_name):
    return [layer for layer in model.layers if type(layer).__name__ == type_name]

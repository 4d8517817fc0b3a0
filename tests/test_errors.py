from tcja_deploy.errors import UserError, cli_main, one_line


def test_worker_traceback_is_reduced_to_the_original_line():
    msg = ("Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
           '  File "x.py", line 1, in f\n    raise UserError("a.bin: truncated")\n'
           "tcja_deploy.errors.UserError: a.bin: truncated\n")
    assert one_line(UserError(msg)) == "a.bin: truncated"
    assert one_line(UserError("plain message")) == "plain message"


def test_cli_main_exit_code_and_single_line(capsys):
    @cli_main
    def main():
        raise UserError("cfg.json: not valid JSON")

    assert main() == 2
    err = capsys.readouterr().err
    assert err == "error: cfg.json: not valid JSON\n"

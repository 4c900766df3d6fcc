"""The command line's exit statuses, as `grep` and `diff` use them: 0 all done, 1 done but not all
of it, 2 nothing done because of a problem (a usage error or bad input), 130 interrupted.

Scripts can tell "some items could not be scored, see the status column" (1) from "the job
never ran" (2) without reading the messages. docs/usage.md lists them.
"""

OK = 0
SOME_ITEMS_FAILED = 1  # score-dir finished; some rows have an error status instead of a score
ERROR = 2  # a usage error (argparse) or a typed error: bad input, options, weights, an unwritable output
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, the shell's convention); finished rows are kept

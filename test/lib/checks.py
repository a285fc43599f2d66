"""PASS/FAIL lines and their counts, shared by the Python suites (test/metrics/run.py and cp.py,
test/dns/run.py): one counter a process.

    sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
    import checks
    from checks import check
    check(value == 3, "the thing is 3", value)   # prints PASS/FAIL, returns ok
    return checks.finish("metrics", tmp, keep)    # "metrics: N passed, M failed"; 1 on a failure
"""
import shutil

passed = failed = 0


def check(ok, name, detail=""):
    """Counts and prints one check; the detail (any value but "") follows a failure's name."""
    global passed, failed
    if ok:
        passed += 1
        print("PASS " + name, flush=True)
    else:
        failed += 1
        print("FAIL " + name + (": %s" % (detail,) if detail != "" else ""), flush=True)
    return ok


def summary(suite):
    return "%s: %d passed, %d failed" % (suite, passed, failed)


def finish(suite, tmp=None, keep=False):
    """The temp dir kept after a failure (or when asked) and said so, else removed; the summary;
    the exit status (1 on any failure)."""
    if tmp:
        if failed or keep:
            print("kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(summary(suite), flush=True)
    return 1 if failed else 0

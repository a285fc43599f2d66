"""PASS/FAIL lines and their counts, shared by the Python suites (test/metrics/run.py and cp.py,
test/dns/run.py): one counter a process.

    sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
    import checks
    from checks import check
    check(value == 3, "the thing is 3", value)   # prints PASS/FAIL, returns ok
    print(checks.summary("metrics"))              # "metrics: N passed, M failed"
"""
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

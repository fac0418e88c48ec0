"""Shared harness of the Python interoperability checks (check_*.py): a C test program writes a file,
Python's own library reads it, and each comparison counts toward "N passed, M failed"."""
import os
import subprocess


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def __call__(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL {what}")

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed")
        return 1 if self.failed else 0


def write_with_c(program, flag, path):
    """Run `program flag path`; True when it exited 0 and made the file (else prints the failure)."""
    r = subprocess.run([program, flag, path], capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists(path):
        print(f"FAIL the C writer: exit {r.returncode}: {r.stdout}{r.stderr}")
        print("0 passed, 1 failed")
        return False
    return True

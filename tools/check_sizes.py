"""Lists functions over 60 lines and classes over 300 lines in the runtime's packages.

`python3 tools/check_sizes.py` prints each offender (file, line, kind, name, length) and their
count; tests/test_code_size.py asserts there are none.
"""

from __future__ import annotations

import ast
import pathlib
import sys

MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 300
PACKAGES = ("hil", "plant_server", "controller_client")


def offenders(root: pathlib.Path) -> list[tuple[str, int, str, str, int]]:
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    limit, kind = MAX_CLASS_LINES, "class"
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    limit, kind = MAX_FUNCTION_LINES, "function"
                else:
                    continue
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append((str(path.relative_to(root)), node.lineno, kind, node.name,
                                  length))
    return found


def main() -> int:
    found = offenders(pathlib.Path(__file__).resolve().parent.parent)
    for path, line, kind, name, length in found:
        print(f"{path}:{line}: {kind} {name} is {length} lines")
    print(f"{len(found)} over {MAX_FUNCTION_LINES} lines (functions) or "
          f"{MAX_CLASS_LINES} (classes)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

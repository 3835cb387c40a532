"""Structure counts of the ``ser_attacks`` package (issue 16): import circles, function-level imports,
files over 300 lines, functions over 60 lines.

    python scripts/structure_counts.py [ROOT] [--list]

ROOT is a checkout (default: this one). Import circles are strongly connected components (more than one
module) of the graph "module A imports module B" over every ``import`` in the package, at module level or
inside functions (a function-level import still couples the two modules). Function-level imports are
``import`` statements inside a function body; those of heavy third-party libraries (kept lazy on purpose so
the CLI starts fast) are counted apart from the rest.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

HEAVY = ("tensorflow", "keras", "art", "mlflow", "optuna", "matplotlib", "librosa", "soundfile", "soxr", "scipy",
         "sklearn", "pandas", "joblib", "requests", "hydra", "PIL", "torch", "speechbrain", "numba", "tqdm")


def module_name(pkg_root: Path, path: Path) -> str:
    parts = list(path.relative_to(pkg_root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def resolve(mod: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def scan(root: Path):
    pkg = root / "ser_attacks"
    files = sorted(pkg.rglob("*.py"))
    mods = {module_name(pkg, f): f for f in files}
    graph: dict[str, set[str]] = {m: set() for m in mods}
    func_imports: list[tuple[str, int, str, bool]] = []
    big_files, big_funcs = [], []

    def target(name: str) -> str | None:
        while name:
            if name in mods:
                return name
            name = name.rpartition(".")[0]
        return None

    for mod, f in mods.items():
        text = f.read_text()
        n_lines = len(text.splitlines())
        if n_lines > 300:
            big_files.append((str(f.relative_to(root)), n_lines))
        tree = ast.parse(text)
        is_pkg = f.name == "__init__.py"
        funcs = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for fn in funcs:
            length = fn.end_lineno - fn.lineno + 1
            if length > 60:
                big_funcs.append((f"{f.relative_to(root)}:{fn.lineno} {fn.name}", length))
        in_func = {id(n) for fn in funcs for n in ast.walk(fn) if n is not fn}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(mod, is_pkg, node)
                subs = [f"{base}.{a.name}" for a in node.names]
                # ``from . import audio`` imports the module audio; ``from .x import f`` imports module x
                names = [n for n in subs if n in mods] + ([base] if any(n not in mods for n in subs) else [])
            else:
                continue
            internal = {t for t in (target(n) for n in names) if t and t != mod}
            graph[mod] |= internal
            if id(node) in in_func:
                top = names[0]
                heavy = top.split(".")[0] in HEAVY
                func_imports.append((mod, node.lineno, top, heavy))
    return graph, func_imports, big_files, big_funcs


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", nargs="?", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--list", action="store_true", help="list every item, not only the counts")
    a = ap.parse_args(argv)
    graph, fimports, big_files, big_funcs = scan(a.root.resolve())
    circ = cycles(graph)
    heavy = sum(h for *_, h in fimports)
    print(f"import circles (SCCs > 1 module): {len(circ)}")
    for c in circ:
        print("  " + " <-> ".join(c))
        if a.list:
            print("    edges: " + ", ".join(f"{m} -> {t}" for m in c for t in sorted(graph[m]) if t in c))
    print(f"function-level imports: {len(fimports)} ({heavy} of heavy third-party libraries, "
          f"{len(fimports) - heavy} other)")
    if a.list:
        for m, line, name, h in fimports:
            print(f"  {m}:{line} {name}{'  [heavy]' if h else ''}")
    print(f"files over 300 lines: {len(big_files)}")
    for f, n in sorted(big_files, key=lambda x: -x[1]):
        print(f"  {f} {n}")
    print(f"functions over 60 lines: {len(big_funcs)}")
    for f, n in sorted(big_funcs, key=lambda x: -x[1]):
        print(f"  {f} {n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

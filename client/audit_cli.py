"""``huzhu audit``: verify a whole chain from genesis (see client.audit for what is checked).

Exit codes: 0 everything verifies; 2 a mismatch or tampering (the first bad height and what
failed are printed); 1 bad usage, an unreadable store or an unreachable node.
"""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from client.api import Client
from client.audit import (
    Auditor,
    AuditReport,
    Failure,
    HttpSource,
    load_genesis,
    open_home_source,
)
from client.cli_common import (
    EXIT_MISMATCH,
    HuzhuCommand,
    default_node_url,
    fail,
    handle_errors,
    json_option,
    print_json,
    print_mapping,
    stderr_console,
)

REMOTE_FETCH_THREADS = 8  # blocks fetched in parallel from each node's API


@click.command("audit", cls=HuzhuCommand)
@click.option("--node", "nodes", multiple=True, metavar="URL",
              help="A node's API to audit (repeat to also check that nodes agree).")
@click.option("--home", "homes", multiple=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=False),
              help="A node's home (NET/nodeI): read its LevelDB directly; the node must be "
                   "stopped (or give a copy). Repeatable.")
@click.option("--genesis", "genesis_path", type=click.Path(exists=True, dir_okay=False),
              help="Trust this genesis file (default: the home's, or the first node's).")
@json_option
@handle_errors
def audit_command(nodes: tuple[str, ...], homes: tuple[str, ...], genesis_path: str | None,
                  as_json: bool) -> None:
    """Verify the whole chain: hash links, commit certificates, transaction signatures,
    tx roots, re-execution of every block against each app_hash and results_hash, stored
    receipts and state, settlement conservation, and agreement between nodes.

    Exit 0 when everything verifies, 2 on any mismatch, 1 on usage or connection errors.
    """
    if nodes and homes:
        fail("give --node URLs or --home directories, not both")
    if not nodes and not homes:
        url = default_node_url()
        if not url:
            fail("give --node URL (repeatable) or --home NET/nodeI")
        nodes = (url,)
    sources = []
    try:
        found = []  # (source name, the genesis that source runs)
        if homes:
            for home in homes:
                home_genesis, source = open_home_source(home)
                sources.append(source)
                found.append((home, home_genesis))
        else:
            for url in nodes:
                client = Client(url)
                found.append((client.base_url, load_genesis(client)))
                sources.append(HttpSource(client))
        genesis = load_genesis(path=genesis_path) if genesis_path else found[0][1]
        mismatched = [(name, other) for name, other in found
                      if other.genesis_hash != genesis.genesis_hash]
        if mismatched:
            name, other = mismatched[0]
            report = AuditReport(genesis.chain_id, [name for name, _ in found],
                                 genesis.genesis_hash)
            report.failures.append(Failure(0, "genesis", f"runs another genesis "
                                           f"({other.genesis_hash.hex()[:16]}…)", name))
        else:
            auditor = Auditor(genesis, sources,
                              fetch_threads=1 if homes else REMOTE_FETCH_THREADS)
            report = _run_with_progress(auditor)
    finally:
        for source in sources:
            source.close()
    _print_report(report, as_json)
    if not report.ok:
        first = report.first_failure
        assert first is not None
        fail(f"audit failed at {first}", EXIT_MISMATCH)


def _run_with_progress(auditor: Auditor) -> AuditReport:
    progress = Progress(TextColumn("auditing"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("blocks"), TimeElapsedColumn(), console=stderr_console,
                        transient=True, disable=not stderr_console.is_terminal)
    with progress:
        task = progress.add_task("audit", total=None)

        def on_start(total: int) -> None:
            progress.update(task, total=total)

        def on_height(height: int) -> None:
            progress.update(task, completed=height)

        return auditor.run(on_start=on_start, on_height=on_height)


def _print_report(report: AuditReport, as_json: bool) -> None:
    if as_json:
        print_json(report.to_json())
        return
    first = report.first_failure
    rows = {
        "result": "VERIFIED" if report.ok else "FAILED",
        "chain": report.chain_id,
        "sources": ", ".join(report.sources),
        "latest height": report.latest_height,
        "heights verified": report.heights_verified,
        "transactions": report.transactions,
        "certificate signatures": report.certificate_signatures,
        "state certified up to": report.certified_height,
        "state root (re-executed)": report.app_hash.hex() if report.app_hash else "-",
        "checks": ", ".join(f"{name} {count}" for name, count in sorted(report.checks.items())),
    }
    if report.conservation:
        rows["settlements checked"] = len(report.conservation)
    if first is not None:
        rows["first bad height"] = first.height
        rows["what failed"] = f"{first.check}: {first.message}"
        rows["where"] = first.source
    print_mapping("chain audit", rows)


"""The ``huzhu`` command line (click). Each area registers its command group here."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="huzhu")
def main() -> None:
    """huzhu: a permissioned PBFT chain and simulator for online mutual-aid plans."""


from client.plan_cli import register as _register_client_commands  # noqa: E402

_register_client_commands(main)

from client.node_cli import register as _register_node_commands  # noqa: E402

_register_node_commands(main)

from client.simulate_cli import simulate  # noqa: E402

main.add_command(simulate)

from client.bench import bench_command  # noqa: E402

main.add_command(bench_command)

if __name__ == "__main__":
    main()

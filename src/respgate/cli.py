"""`respgate serve`, `respgate demo`."""

from __future__ import annotations

import gc
import logging
import sys

import click
import uvloop

from respgate.config import ConfigError, Settings, load_settings
from respgate.demo import main as run_demo
from respgate.http.app import Gateway, create_app
from respgate.http.server import build_server
from respgate.providers.registry import build_provider

log = logging.getLogger("respgate")


def _describe(settings: Settings, host: str, port: int) -> None:
    click.echo(f"respgate listening on http://{host}:{port}/v1", err=True)
    for entry in settings.models:
        click.echo(f"  model {entry.name!r} -> {entry.provider} ({entry.target})", err=True)
    for alias, target in settings.aliases.items():
        click.echo(f"  alias {alias!r} -> {target!r}", err=True)
    if settings.default_model:
        click.echo(f"  any other model name -> {settings.default_model!r}", err=True)
    if not settings.api_keys:
        click.echo("  WARNING: no API keys configured; the server is open to anyone who can reach it", err=True)


async def _serve(settings: Settings, host: str, port: int) -> None:
    gateway = await Gateway.open(settings, build_provider=build_provider)
    app = create_app(gateway, manage=True)
    # Everything built so far lives as long as the server: keep the collector from rescanning it.
    gc.collect()
    gc.freeze()
    server = build_server(app, settings.server, host=host, port=port, log_level=settings.log_level)
    _describe(settings, host, port)
    await server.serve()


@click.group()
@click.version_option(package_name="respgate")
def main() -> None:
    """respgate: OpenAI's Responses API for every model."""


@main.command()
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None, help="YAML configuration file."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
def serve(config_path: str | None, host: str, port: int) -> None:
    """Run the server."""
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    uvloop.run(_serve(settings, host, port))


@main.command()
@click.option("--base-url", default="http://127.0.0.1:8080/v1", show_default=True)
@click.option("--model", default="gpt-4.1", show_default=True, help="The seed asks for gpt-4.1; any name works.")
@click.option("--api-key", envvar="OPENAI_API_KEY", default="respgate", show_default=False)
def demo(base_url: str, model: str, api_key: str) -> None:
    """Run the parallel function-calling conversation against a running server."""
    sys.exit(run_demo(base_url=base_url, model=model, api_key=api_key))

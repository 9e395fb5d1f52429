"""``gleitzeit token``: mint role credentials for a server (docs/security.md)."""

from __future__ import annotations

import click

from gleitzeit.cli.state import state_of


@click.group("token")
def token_group() -> None:
    """Credentials for `gleitzeit serve`: provider, client and admin tokens."""


@token_group.command("create")
@click.option(
    "--role",
    type=click.Choice(["provider", "client", "admin"]),
    required=True,
    help="What the holder may do.",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    help="A provider name the holder may register (repeat; '*' for any). Provider role only.",
)
@click.option("--ttl", default="30d", show_default=True, help="Lifetime: 30d, 12h, 15m, 90s.")
@click.option("--subject", default="", help="Who the token is for (shown in server logs).")
@click.pass_context
def token_create(
    ctx: click.Context, role: str, providers: tuple[str, ...], ttl: str, subject: str
) -> None:
    """Print a token signed with server.secret ($GLEITZEIT_SECRET)."""
    from gleitzeit.tokens import mint, parse_ttl

    secret = state_of(ctx).config.server.resolved_secret()
    if secret is None:
        raise click.UsageError(
            "no signing secret: set server.secret in gleitzeit.yaml or GLEITZEIT_SECRET "
            "(`gleitzeit token secret` makes one)"
        )
    try:
        token = mint(secret, role, providers=list(providers), ttl=parse_ttl(ttl), subject=subject)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    click.echo(token)


@token_group.command("secret")
def token_secret() -> None:
    """Print a new random signing secret for server.secret / GLEITZEIT_SECRET."""
    import secrets

    click.echo(secrets.token_urlsafe(48))


COMMANDS = [token_group]

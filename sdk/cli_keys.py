"""`sitelens` commands for signed bundles: keygen, sign, verify."""
from __future__ import annotations

import click

from .cli_common import friendly


@click.command()
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Private key file to write (e.g. site.key); the public key goes beside it as .pub.")
@click.option("--force", is_flag=True, help="Overwrite existing key files.")
@click.option("--passphrase-env", metavar="VAR",
              help="Encrypt the private key with the passphrase in environment variable VAR; commands that sign "
                   "then read it from SITELENS_KEY_PASSPHRASE.")
@friendly
def keygen(out, force, passphrase_env):
    """Create an Ed25519 signing key pair: OUT (private, mode 0600) and OUT.pub (give it to devices)."""
    import os

    from runtime.bundle.signing import generate_keypair

    passphrase = None
    if passphrase_env:
        if not os.environ.get(passphrase_env):
            raise click.UsageError(f"--passphrase-env {passphrase_env}: that environment variable is empty or unset")
        passphrase = os.environ[passphrase_env].encode("utf-8")
    private, public, kid = generate_keypair(out, overwrite=force, passphrase=passphrase)
    click.echo(f"wrote {private} (private: keep it off devices{', encrypted' if passphrase else ''}) and {public} "
               f"(key id {kid})")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False), help="Private key (site.key).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Write the signed bundle here (default: in place).")
@friendly
def sign(bundle, key, out):
    """Sign an existing BUNDLE (its checksums are verified first)."""
    from runtime.bundle.format import sign_bundle

    path, info = sign_bundle(bundle, key, out)
    click.echo(f"signed {path} with key {info.key_id}")


@click.command()
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False))
@click.option("--trust", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Trusted public key(s) (site.pub); repeat for several.")
@friendly
def verify(bundle, trust):
    """Check that BUNDLE is intact and signed by a trusted key (exit status 1 if not)."""
    from runtime.bundle.format import read_bundle

    contents = read_bundle(bundle, trusted_keys=list(trust))
    when = contents.signature.signed or "signing date not covered by this older signature"
    click.echo(f"{bundle}: OK, signed by key {contents.signature.key_id} ({when}); "
               f"{len(contents.manifest.members)} members verified")

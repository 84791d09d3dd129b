"""The token key pair of a dev or embedded run, kept under var/keys/."""

from __future__ import annotations

import os
from pathlib import Path

from callcenter_common.auth import generate_keypair


def ensure_dev_keys(var_dir: Path) -> tuple[Path, Path]:
    """Create var/keys/jwt-{private,public}.pem once; point the services at them."""
    keys = var_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    private, public = keys / "jwt-private.pem", keys / "jwt-public.pem"
    if not private.exists() or not public.exists():
        private_pem, public_pem = generate_keypair()
        private.write_text(private_pem)
        private.chmod(0o600)
        public.write_text(public_pem)
    os.environ.setdefault("AGENT_STATE_JWT_PRIVATE_KEY_FILE", str(private.resolve()))
    os.environ.setdefault("CALLCENTER_JWT_PUBLIC_KEY_FILE", str(public.resolve()))
    return private, public

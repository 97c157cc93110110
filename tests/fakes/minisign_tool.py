"""The real `minisign` binary (Debian package `minisign`): key pairs and signatures for tests."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.binaries import require_binary

MINISIGN = shutil.which("minisign")


def require_minisign() -> str:
    return require_binary("minisign", package="minisign")


@dataclass(frozen=True)
class KeyPair:
    directory: Path
    public_file: Path
    secret_file: Path

    @property
    def public_line(self) -> str:
        """The base64 line of the public key file: what `[upgrades] trusted_keys` holds."""
        return self.public_file.read_text().strip().splitlines()[-1].strip()

    @property
    def key_id(self) -> str:
        """As minisign prints it in the public key file's comment."""
        return self.public_file.read_text().splitlines()[0].rsplit(" ", 1)[-1].strip()

    def sign(self, data: bytes, *, comment: str = "hh release", legacy: bool = False) -> bytes:
        """Sign `data` with the real binary; returns the `.minisig` file's bytes."""
        binary = require_minisign()
        message = self.directory / "manifest.json"
        message.write_bytes(data)
        out = self.directory / "manifest.json.minisig"
        out.unlink(missing_ok=True)
        args = [binary, "-S", "-s", str(self.secret_file), "-m", str(message)]
        args += ["-x", str(out), "-t", comment]
        if legacy:
            args.append("-l")
        subprocess.run(args, check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
        return out.read_bytes()


def generate(directory: Path) -> KeyPair:
    """A password-less key pair in `directory` (`minisign -G -W`)."""
    binary = require_minisign()
    directory.mkdir(parents=True, exist_ok=True)
    pub, sec = directory / "minisign.pub", directory / "minisign.key"
    subprocess.run(
        [binary, "-G", "-W", "-f", "-p", str(pub), "-s", str(sec)],
        check=True,
        capture_output=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    return KeyPair(directory, pub, sec)

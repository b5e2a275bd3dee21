"""A private Tor network on loopback: three directory authorities, two relays, a client, an
onion service. Everything comes from Debian's ``tor`` and ``tor-gencert``, configured as the tor
manual describes for ``TestingTorNetwork``; no public relay is ever contacted.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from pathlib import Path

TESTING_OPTIONS = """\
TestingTorNetwork 1
RunAsDaemon 0
ShutdownWaitLength 0
SafeLogging 0
AssumeReachable 1
Address 127.0.0.1
AuthDirMaxServersPerAddr 0
TestingDirAuthVoteExit *
TestingDirAuthVoteGuard *
TestingDirAuthVoteHSDir *
TestingMinExitFlagThreshold 0
TestingV3AuthInitialVotingInterval 10
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthVotingInterval 10
V3AuthVoteDelay 2
V3AuthDistDelay 2
V3AuthNIntervalsValid 2
PathsNeededToBuildCircuits 0.25
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tor_available() -> bool:
    return shutil.which("tor") is not None and shutil.which("tor-gencert") is not None


class PrivateTorNetwork:
    """Starts and stops the tor processes of one private network under ``workdir``."""

    def __init__(self, workdir: Path, service_port: int) -> None:
        self.workdir = workdir
        self.service_port = service_port
        self.processes: list[subprocess.Popen[bytes]] = []
        self.socks_port = free_port()
        self.control_port = free_port()
        self.control_password = "darkscope-test"
        self.onion_address = ""

    # -- configuration ------------------------------------------------------------------------
    def _authority(self, index: int) -> tuple[Path, str, int, int]:
        """Create keys for one authority; return (datadir, DirAuthority line, orport, dirport)."""
        datadir = self.workdir / f"auth{index}"
        keys = datadir / "keys"
        keys.mkdir(parents=True)
        orport, dirport = free_port(), free_port()
        subprocess.run(
            ["tor-gencert", "--create-identity-key", "-m", "12",
             "-a", f"127.0.0.1:{dirport}",
             "-i", str(keys / "authority_identity_key"),
             "-s", str(keys / "authority_signing_key"),
             "-c", str(keys / "authority_certificate"), "--passphrase-fd", "0"],
            input=b"\n", check=True, capture_output=True, timeout=60)
        subprocess.run(
            ["tor", "--list-fingerprint", "--DataDirectory", str(datadir), "--ORPort", "1",
             "--DirAuthority", "x 127.0.0.1:1 ffffffffffffffffffffffffffffffffffffffff",
             "--ignore-missing-torrc", "-f", "/dev/null", "--quiet"],
            check=True, capture_output=True, timeout=60)
        relay_fp = (datadir / "fingerprint").read_text().split()[1]
        cert = (keys / "authority_certificate").read_text()
        v3ident = next(line.split()[1] for line in cert.splitlines()
                       if line.startswith("fingerprint "))
        line = (f"DirAuthority auth{index} orport={orport} no-v2 v3ident={v3ident} "
                f"127.0.0.1:{dirport} {relay_fp}")
        return datadir, line, orport, dirport

    def _write(self, name: str, datadir: Path, body: str) -> Path:
        datadir.mkdir(parents=True, exist_ok=True)
        datadir.chmod(0o700)
        torrc = self.workdir / f"{name}.torrc"
        torrc.write_text(
            f"{TESTING_OPTIONS}{self._dirauth_lines}\nNickname {name}\n"
            f"DataDirectory {datadir}\nLog notice file {datadir / 'notice.log'}\n{body}")
        return torrc

    def _spawn(self, torrc: Path) -> None:
        if not self.processes:
            atexit.register(self.stop)  # even if the test session dies, no tor outlives it
        self.processes.append(subprocess.Popen(
            ["tor", "-f", str(torrc)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True))

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        authorities = [self._authority(i) for i in range(3)]
        self._dirauth_lines = "\n".join(line for _, line, _, _ in authorities)
        for index, (datadir, _, orport, dirport) in enumerate(authorities):
            self._spawn(self._write(f"auth{index}", datadir, (
                f"ORPort 127.0.0.1:{orport}\nDirPort 127.0.0.1:{dirport}\n"
                "AuthoritativeDirectory 1\nV3AuthoritativeDirectory 1\n"
                "ExitPolicy reject *:*\nSocksPort 0\n")))
        for index in range(2):
            self._spawn(self._write(f"relay{index}", self.workdir / f"relay{index}", (
                f"ORPort 127.0.0.1:{free_port()}\nDirPort 127.0.0.1:{free_port()}\n"
                "ExitPolicy reject *:*\nSocksPort 0\n")))
        hashed = subprocess.run(
            ["tor", "--quiet", "--hash-password", self.control_password],
            check=True, capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]
        self._spawn(self._write("client", self.workdir / "client", (
            f"SocksPort 127.0.0.1:{self.socks_port} IsolateSOCKSAuth\n"
            f"ControlPort 127.0.0.1:{self.control_port}\nHashedControlPassword {hashed}\n")))
        service_dir = self.workdir / "service" / "hs"
        service_dir.mkdir(parents=True)
        service_dir.chmod(0o700)
        self._spawn(self._write("service", self.workdir / "service", (
            f"SocksPort 0\nHiddenServiceDir {service_dir}\n"
            f"HiddenServicePort 80 127.0.0.1:{self.service_port}\n")))
        hostname = service_dir / "hostname"
        deadline = time.monotonic() + 60
        while not hostname.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"onion service did not write {hostname}: {self.logs()}")
            self.check_alive()
            time.sleep(0.2)
        self.onion_address = hostname.read_text().strip()

    def check_alive(self) -> None:
        dead = [p.args for p in self.processes if p.poll() is not None]
        if dead:
            raise RuntimeError(f"tor exited early: {dead}\n{self.logs()}")

    def logs(self, tail: int = 15) -> str:
        parts = []
        for log in sorted(self.workdir.glob("*/notice.log")):
            lines = log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"== {log.parent.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.processes.clear()

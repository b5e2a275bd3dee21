"""darkscope's crawler against Scrapy on the same local test market, same run, same limits.

Both crawl every in-scope page of the test market (logged in with its session cookie) with the
same global and per-site concurrency, the same per-site delay, timeout and size limit. Through
the proxy, darkscope speaks SOCKS5h to microsocks; Scrapy has no SOCKS support, so it goes the
usual way for Scrapy over Tor: an HTTP proxy (privoxy ``forward-socks5``, to the same microsocks;
``forward-socks5t`` sends data before the SOCKS reply, which microsocks drops). The
direct rows (no proxy) compare the crawlers alone.

    .venv/bin/python benchmarks/crawl.py [--per-category 250] [--concurrency 16]

Needs the bench extra (Scrapy) and the Debian packages microsocks and privoxy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRAPY_SPIDER = r'''
import json, sys
import scrapy
from scrapy.crawler import CrawlerProcess
from scrapy.linkextractors import LinkExtractor

base, token, concurrency, delay, proxy = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    float(sys.argv[4]), sys.argv[5]
host = base.split("//", 1)[1]


class Market(scrapy.Spider):
    name = "market"
    allowed_domains = [host.split(":")[0]]
    links = LinkExtractor()

    async def start(self):
        yield scrapy.Request(base + "/", cookies={"market_session": token},
                             meta={"proxy": proxy} if proxy else {})

    def parse(self, response):
        if "/listing/" in response.url:
            yield {"url": response.url, "title": response.css("h1.title::text").get(),
                   "price": response.css("span.price::text").get()}
        if not hasattr(response, "text"):
            return
        for link in self.links.extract_links(response):
            yield response.follow(link, meta={"proxy": proxy} if proxy else {})


process = CrawlerProcess(settings={
    "LOG_LEVEL": "ERROR", "ROBOTSTXT_OBEY": False, "TELNETCONSOLE_ENABLED": False,
    "CONCURRENT_REQUESTS": concurrency, "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
    "DOWNLOAD_DELAY": delay, "RANDOMIZE_DOWNLOAD_DELAY": False, "DOWNLOAD_TIMEOUT": 60,
    "DOWNLOAD_MAXSIZE": 2_000_000, "RETRY_TIMES": 3, "DEPTH_LIMIT": 10,
    "COOKIES_ENABLED": True, "HTTPPROXY_ENABLED": bool(proxy),
})
crawler = process.create_crawler(Market)
process.crawl(crawler)
process.start()
stats = crawler.stats.get_stats()
print(json.dumps({"pages": stats.get("response_received_count", 0),
                  "seconds": stats["elapsed_time_seconds"],
                  "items": stats.get("item_scraped_count", 0)}))
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int) -> None:
    for _ in range(200):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"port {port} never opened")


def run_darkscope(base: str, token: str, concurrency: int, delay: float, proxy: str | None,
                  work: Path) -> dict:
    out = work / f"ds-{time.monotonic_ns()}"
    cookies = work / "cookies.txt"
    cookies.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\t"
                       f"market_session\t{token}\n")
    command = [sys.executable, "-m", "darkscope.cli", "crawl", base + "/", "-o", str(out),
               "--market", "testmarket", "--cookies", str(cookies), "--concurrency",
               str(concurrency), "--per-site", str(concurrency), "--delay", str(delay),
               "--no-progress", *(["--proxy", proxy] if proxy else ["--direct"])]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    wall = time.monotonic() - started
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return {"pages": summary["fetched"], "seconds": summary["seconds"],
            "items": summary["listings"], "wall": wall}


def run_scrapy(base: str, token: str, concurrency: int, delay: float, proxy: str | None,
               work: Path) -> dict:
    spider = work / "spider.py"
    spider.write_text(SCRAPY_SPIDER)
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(spider), base, token, str(concurrency),
                             str(delay), proxy or ""], capture_output=True, text=True,
                            check=True)
    wall = time.monotonic() - started
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "wall": wall}


def best_of(repeat: int, run, *args) -> dict:
    """The fastest of ``repeat`` runs: the machine is shared, noise only ever slows a run."""
    return min((run(*args) for _ in range(repeat)), key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--slow-seconds", type=float, default=0.0,
                        help="How long the market's slow page takes (0: pages/s measures the "
                             "crawlers, not the wait).")
    args = parser.parse_args()
    for tool in ("microsocks", "privoxy"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")
    work = Path(tempfile.mkdtemp(prefix="darkscope-bench-"))
    market_port, socks, http_proxy = free_port(), free_port(), free_port()
    (work / "privoxy.conf").write_text(
        f"listen-address 127.0.0.1:{http_proxy}\nforward-socks5 / 127.0.0.1:{socks} .\n"
        "toggle 0\nmax-client-connections 512\nkeep-alive-timeout 5\n")
    processes = [
        subprocess.Popen([sys.executable, "-m", "darkscope.darkweb.testmarket", "--port",
                          str(market_port), "--per-category", str(args.per_category),
                          "--slow-seconds", str(args.slow_seconds)],
                         stdout=subprocess.PIPE, text=True),
        subprocess.Popen(["microsocks", "-i", "127.0.0.1", "-p", str(socks)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen(["privoxy", "--no-daemon", str(work / "privoxy.conf")],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        token = processes[0].stdout.readline().strip().rsplit("=", 1)[1]
        for port in (market_port, socks, http_proxy):
            wait_port(port)
        base = f"http://127.0.0.1:{market_port}"
        print(f"test market: {args.per_category * 4} listings; concurrency {args.concurrency} "
              f"(global and per site), delay {args.delay} s")
        print("| route | darkscope pages/s | Scrapy pages/s | ratio | pages (ds / Scrapy) "
              "| listings (ds / Scrapy) | wall s, process start to listings (ds / Scrapy) |")
        print("|---|---:|---:|---:|---|---|---|")
        for route, ds_proxy, scrapy_proxy in (
                ("SOCKS5 proxy (Scrapy via privoxy)", f"socks5h://127.0.0.1:{socks}",
                 f"http://127.0.0.1:{http_proxy}"),
                ("direct", None, None)):
            ours = best_of(args.repeat, run_darkscope, base, token, args.concurrency, args.delay,
                           ds_proxy, work)
            theirs = best_of(args.repeat, run_scrapy, base, token, args.concurrency, args.delay,
                             scrapy_proxy, work)
            rate_ours = ours["pages"] / ours["seconds"]
            rate_theirs = theirs["pages"] / theirs["seconds"]
            print(f"| {route} | {rate_ours:.0f} | {rate_theirs:.0f} | "
                  f"{rate_ours / rate_theirs:.2f} | {ours['pages']} / {theirs['pages']} | "
                  f"{ours['items']} / {theirs['items']} | "
                  f"{ours['wall']:.1f} / {theirs['wall']:.1f} |",
                  flush=True)
    finally:
        for process in processes:
            process.kill()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

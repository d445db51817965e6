"""Pre-seeds rocrate-validator's HTTP cache (requests-cache, SQLite backend) with the JSON-LD
contexts vendored under assets/rocrate/, so that `rocrate-validator validate --offline
--cache-path <cache>` resolves them with no network. Run by scripts/setup-rocrate.sh with the
validator's venv Python; idempotent (an entry is rewritten with the same bytes).

Usage: python rocrate-seed-cache.py ASSETS_DIR [CACHE_NAME]
CACHE_NAME defaults to <venv>/http_cache (the validator's --cache-path; SQLite adds .sqlite).
"""
import io
import json
import pathlib
import sys

import urllib3
from requests.adapters import HTTPAdapter
from requests_cache import CachedSession

# URL the validator (and the crate's @context) names → vendored file
CONTEXTS = {
    "https://w3id.org/ro/crate/1.1/context": "ro-crate-1.1-context.jsonld",
    "https://w3id.org/ro/terms/workflow-run/context": "workflow-run-context.jsonld",
}


def main() -> int:
    assets = pathlib.Path(sys.argv[1])
    cache = sys.argv[2] if len(sys.argv) > 2 else str(pathlib.Path(sys.prefix) / "http_cache")
    session = CachedSession(cache_name=cache, backend="sqlite", expire_after=-1,
                            allowable_methods=("GET",), allowable_codes=(200, 302, 404))
    bodies = {}
    for url, name in CONTEXTS.items():
        body = (assets / name).read_bytes()
        json.loads(body)  # a vendored file must be JSON
        bodies[url] = body

    class Vendored(HTTPAdapter):
        """Serves the vendored files: nothing leaves the machine."""

        def send(self, request, **_kwargs):
            body = bodies[request.url]
            raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers={"Content-Type": "application/ld+json"},
                                       status=200, reason="OK", preload_content=False, request_url=request.url)
            return self.build_response(request, raw)

    session.mount("https://", Vendored())
    session.mount("http://", Vendored())
    for url in CONTEXTS:
        r = session.get(url, force_refresh=True)
        if r.status_code != 200 or r.content != bodies[url] or not session.cache.contains(url=url):
            print(f"rocrate-seed-cache: {url} not stored in {cache}", file=sys.stderr)
            return 1
    print(f"rocrate-seed-cache: {len(CONTEXTS)} context(s) in {cache}.sqlite")
    return 0


if __name__ == "__main__":
    sys.exit(main())

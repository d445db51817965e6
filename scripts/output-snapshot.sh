#!/bin/bash
# usage: scripts/output-snapshot.sh BINARY OUTFILE   (in a project with experiments/demo.yaml and
# experiments/gse7390.yaml; generates demo-data/ when missing; REMOVES cache/, reports/ and runs/
# of that project first, so run it in a scratch clone). Records, per spec, every stage's
# stage/item/kind/key and the sha256 of every file of its cache entry's out/, plus the published
# figures: `diff` two snapshots to show a refactor changed no key and no output byte.
set -e
B=$(readlink -f "$1"); OUT=$(readlink -f "$2")
rm -rf cache reports runs
[ -d demo-data ] || $B demo generate --out demo-data >/dev/null
: > "$OUT"
for spec in experiments/demo.yaml experiments/gse7390.yaml; do
  $B run $spec >/dev/null 2>&1 || { echo "run $spec failed" >&2; exit 1; }
  $B plan $spec --json | python3 -c '
import json,sys,hashlib,os
p=json.load(sys.stdin)
for s in p["stages"]:
    k=s["key"]; d="cache/entries/%s/%s/out"%(k[:2],k)
    print("KEY", s["stage"], s["item"], s["kind"], k)
    for root,_,files in os.walk(d):
        for f in sorted(files):
            fp=os.path.join(root,f); rel=os.path.relpath(fp,d)
            print("FILE", s["stage"], s["item"], rel, hashlib.sha256(open(fp,"rb").read()).hexdigest())
' >> "$OUT"
done
for f in $(find reports -type f -name '*.svg' | sort); do echo "PUB $f $(sha256sum < $f | cut -c1-64)" >> "$OUT"; done
echo "snapshot: $(grep -c ^KEY "$OUT") keys, $(grep -c ^FILE "$OUT") files" >&2

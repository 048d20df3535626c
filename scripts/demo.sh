#!/usr/bin/env bash
# The README's demo: a local 4-node consortium runs a mutual-aid plan, driven through the CLI.
#
#   ./scripts/demo.sh          run the whole scenario, audit the chain, stop the consortium
#   ./scripts/demo.sh --keep   leave the consortium running afterwards to explore it
#
# Creates .venv (Python 3.11) and installs huzhu if needed, makes a testnet whose plan
# durations are divided by DEMO_TIME_SCALE (default 10800: a day of plan time passes in eight
# seconds, a half-month settlement period in two minutes), starts it, and then, only through `huzhu` commands: enrolls members, records
# their payments, lets the waiting period pass, files claims with anchored evidence, approves
# one that is paid after its public notice, has another objected to and decided by a drawn
# jury with commit-reveal votes, lets a settlement publish the members' shares, has a member
# exit, verifies an evidence file, audits the chain, and prints a summary.
#
# The consortium's orgs first vote (governance) to fit the plan to a small demo: a 15 s waiting
# period, a jury quorum of 3, and 20 s jury commit and reveal windows.
#
# Settings (environment): DEMO_DIR (default demo-net), DEMO_BASE_PORT (default 26650; the
# nodes use the 8 ports from there), DEMO_TIME_SCALE, DEMO_MEMBERS (default 36),
# DEMO_NO_INSTALL=1 (use .venv as it is; the tests set it).
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
for arg in "$@"; do
    case "$arg" in
        --keep) KEEP=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "usage: $0 [--keep]" >&2; exit 1 ;;
    esac
done

DIR="${DEMO_DIR:-demo-net}"
BASE_PORT="${DEMO_BASE_PORT:-26650}"
TIME_SCALE="${DEMO_TIME_SCALE:-10800}"
MEMBERS="${DEMO_MEMBERS:-36}"
JURORS=6               # members 11..16 pass the juror exam
WAITING_MS=15000       # the consortium votes the waiting period down to 15 s for the demo
STEP_TIMEOUT_S=300     # the longest any one wait may take (a settlement period is ~122 s)

# --- environment -------------------------------------------------------------------------
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $("$PYTHON" --version)"
    "$PYTHON" -m venv .venv
fi
if [ -z "${DEMO_NO_INSTALL:-}" ] && { [ ! -x .venv/bin/huzhu ] || [ pyproject.toml -nt .venv/bin/huzhu ]; }; then
    echo "installing huzhu into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e .
    touch .venv/bin/huzhu
fi
PY=.venv/bin/python
HUZHU=(.venv/bin/huzhu)

NET="$DIR/net"
KEYS="$NET/keys"
PEOPLE="$DIR/members"
DOCS="$DIR/evidence"
NODE_URL="http://127.0.0.1:$((BASE_PORT + 1))"
export HUZHU_NODE="$NODE_URL"

bold=""; reset=""
if [ -t 1 ]; then bold=$'\e[1m'; reset=$'\e[0m'; fi
STEP=0
step() { STEP=$((STEP + 1)); printf '\n%s== %d. %s%s\n' "$bold" "$STEP" "$*" "$reset"; }
say() { printf '   %s\n' "$*"; }
die() { printf '\ndemo failed: %s\n' "$*" >&2; exit 1; }
huzhu() { "${HUZHU[@]}" "$@"; }

# jget PATH: read JSON on stdin and print the value at PATH (dots; list indexes are numbers).
jget() {
    "$PY" -c '
import json, sys
value = json.load(sys.stdin)
for part in sys.argv[1].split(".") if sys.argv[1] else []:
    value = value[int(part)] if isinstance(value, list) else value[part]
print(json.dumps(value) if isinstance(value, (dict, list)) else value)' "$1"
}
yuan() { printf '%d.%02d' $(($1 / 100)) $(($1 % 100)); }  # fen (>= 0) as yuan
now_ms() { "$PY" -c 'import time; print(int(time.time() * 1000))'; }

# Block time only moves when blocks are made, and blocks are made for transactions. While
# the demo waits for plan time to pass, the treasurer keeps recording small top-ups from
# members (as the real plan's payment rail would), and each of those commits a block.
TICK=0
tick() {
    TICK=$((TICK + 1))
    local member=$(( (TICK % MEMBERS) + 1 ))
    huzhu member deposit "$PEOPLE/member-$member.json" --amount 0.10 \
        --key "$KEYS/treasurer.json" --json >/dev/null || true
}

# wait_for WHAT COMMAND...: run COMMAND until it succeeds, ticking the chain in between.
wait_for() {
    local what="$1"; shift
    local deadline=$((SECONDS + STEP_TIMEOUT_S))
    printf '   waiting for %s ' "$what"
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo
            die "timed out after ${STEP_TIMEOUT_S}s waiting for $what"
        fi
        tick
        printf '.'
        sleep 0.5
    done
    echo " done"
}

claim_status() { huzhu claim show "$1" --json | jget status; }
claim_is() { [ "$(claim_status "$1")" = "$2" ]; }
claim_is_final() { case "$(claim_status "$1")" in approved|paid|closed) return 0 ;; esac; return 1; }

cleanup() {
    local status=$?
    if [ "$KEEP" -eq 1 ] && [ "$status" -eq 0 ]; then
        return
    fi
    if [ -f "$NET/genesis.json" ]; then
        echo
        echo "stopping the consortium"
        huzhu consortium down --dir "$NET" >/dev/null 2>&1 || true
    fi
    if [ "$status" -ne 0 ] && [ -d "$NET" ]; then
        echo "node logs are in $NET/node*/node.log" >&2
    fi
}

# --- the consortium ----------------------------------------------------------------------
step "a 4-node consortium (plan time runs ${TIME_SCALE}x faster than real time)"
if [ -f "$NET/genesis.json" ]; then
    huzhu consortium down --dir "$NET" >/dev/null 2>&1 || true
fi
rm -rf "$PEOPLE" "$DOCS"
huzhu testnet --nodes 4 --dir "$NET" --time-scale "$TIME_SCALE" --base-port "$BASE_PORT" --force
trap cleanup EXIT
huzhu consortium up --dir "$NET"
say "node0's API: $NODE_URL (all commands below talk to it through HUZHU_NODE)"

# --- members -----------------------------------------------------------------------------
step "$MEMBERS people get keys; the registrar enrolls them (free to join)"
mkdir -p "$PEOPLE" "$DOCS"
huzhu keys new --out "$PEOPLE/member-{n}.json" --count "$MEMBERS" --json > "$PEOPLE/keys.json"
say "keys in $PEOPLE/member-1.json .. member-$MEMBERS.json"
{
    echo "member,national_id,birth"
    for i in $(seq 1 "$MEMBERS"); do
        # Ages 26 to 56: the young are covered up to RMB 300,000, those 40 and over 100,000.
        printf '%s,11010119%02d%04d,%d-%02d-15\n' "$PEOPLE/member-$i.json" $((i % 90)) "$i" \
            $((1970 + (i * 7) % 31)) $(( (i % 12) + 1 ))
    done
} > "$PEOPLE/enroll.csv"
huzhu member enroll --batch "$PEOPLE/enroll.csv" --key "$KEYS/registrar.json"
ENROLLED_MS=$(now_ms)

step "the treasurer records each member's payment of RMB 20 into their plan balance"
huzhu member deposit $(seq -f "$PEOPLE/member-%g.json" 1 "$MEMBERS") --amount 20 \
    --key "$KEYS/treasurer.json"

step "the registrar qualifies $JURORS members as jurors (they passed the juror exam)"
huzhu member qualify-juror $(seq -f "$PEOPLE/member-%g.json" 11 $((10 + JURORS))) \
    --key "$KEYS/registrar.json"

step "governance: the orgs vote (3 of 4 > 2/3) to fit the plan to a demo of $MEMBERS members"
# The 90-day waiting period and the 30-day juror seniority, shortened; a jury quorum for 36
# members instead of 1,001 votes; jury windows long enough for a busy laptop.
PROPOSED=$(huzhu gov propose --key "$KEYS/org0.json" --json \
    --set-param "waiting_ms=$WAITING_MS" --set-param jury_quorum=3 \
    --set-param juror_seniority_ms=5000 --set-param commit_ms=20000 --set-param reveal_ms=20000)
PROPOSALS=$(echo "$PROPOSED" | "$PY" -c '
import json, sys
print(" ".join(str(t["result"]["proposal_id"]) for t in json.load(sys.stdin)["transactions"]))')
say "org0 proposed $(echo "$PROPOSED" | "$PY" -c '
import json, sys
print(", ".join(t["change"] for t in json.load(sys.stdin)["transactions"]))')"
huzhu gov approve $PROPOSALS --key "$KEYS/org1.json"
APPLIED=$(huzhu gov approve $PROPOSALS --key "$KEYS/org2.json" --json | "$PY" -c '
import json, sys
print(sum(t["result"].get("status") == "applied" for t in json.load(sys.stdin)["transactions"]))')
[ "$APPLIED" -eq "$(echo $PROPOSALS | wc -w)" ] || die "only $APPLIED proposals were applied"
say "org2's approvals make 3 of 4 orgs: proposals $PROPOSALS applied"

# --- claims ------------------------------------------------------------------------------
step "the waiting period (now ${WAITING_MS} ms) passes for the new members"
until [ "$(now_ms)" -gt $((ENROLLED_MS + WAITING_MS + 1500)) ]; do sleep 0.5; done
say "waiting period over"

step "two members fall ill and file claims; their evidence is anchored on chain"
mkdir -p "$DOCS/claim-a" "$DOCS/claim-b"
cat > "$DOCS/claim-a/diagnosis.txt" <<EOF
Beijing Union Hospital — discharge summary
Patient: member-1. Diagnosis: acute myocardial infarction (severe), confirmed by ECG and troponin.
EOF
cat > "$DOCS/claim-a/invoice.txt" <<EOF
Invoice 2026-0001: coronary intervention and ICU stay, RMB 128,400.00
EOF
cat > "$DOCS/claim-b/pathology.txt" <<EOF
Pathology report: malignant tumour (severe), stage III. Patient: member-4.
EOF
cat > "$DOCS/claim-b/diagnosis.txt" <<EOF
Oncology department diagnosis for member-4: malignant neoplasm of the colon.
EOF
CLAIM_A=$(huzhu claim submit --key "$PEOPLE/member-1.json" --condition CI002 --amount 100000 \
    --evidence "$DOCS/claim-a/diagnosis.txt" --evidence "$DOCS/claim-a/invoice.txt" --json \
    | jget result.claim_id)
[ "$(claim_status "$CLAIM_A")" = "submitted" ] || die "claim $CLAIM_A was not accepted"
huzhu evidence anchor "diagnosis:$DOCS/claim-a/diagnosis.txt" "invoice:$DOCS/claim-a/invoice.txt" \
    --claim "$CLAIM_A" --key "$PEOPLE/member-1.json"
CLAIM_B=$(huzhu claim submit --key "$PEOPLE/member-4.json" --condition CI001 --amount 300000 \
    --evidence "$DOCS/claim-b/pathology.txt" --evidence "$DOCS/claim-b/diagnosis.txt" --json \
    | jget result.claim_id)
huzhu evidence anchor "pathology:$DOCS/claim-b/pathology.txt" \
    "diagnosis:$DOCS/claim-b/diagnosis.txt" --claim "$CLAIM_B" --key "$PEOPLE/member-4.json" \
    --json >/dev/null
say "claim $CLAIM_A (member-1, heart attack, RMB 100,000) and claim $CLAIM_B (member-4, cancer, RMB 300,000)"

step "the reviewer approves both; each goes into public notice"
huzhu claim review "$CLAIM_A" --approve 100000 --key "$KEYS/reviewer.json"
huzhu claim review "$CLAIM_B" --approve 300000 --key "$KEYS/reviewer.json" --json >/dev/null
say "claim $CLAIM_B approved for RMB 300,000, in notice"

step "member-3 objects to claim $CLAIM_B during its notice, with evidence"
cat > "$DOCS/objection.txt" <<EOF
Clinic record of 2019 for member-4 mentioning a colon polyp under observation.
EOF
huzhu claim object "$CLAIM_B" --reason pre_existing_condition --evidence "$DOCS/objection.txt" \
    --key "$PEOPLE/member-3.json"

step "the public notice ends: claim $CLAIM_A stands, claim $CLAIM_B goes to a jury"
wait_for "the end of the notice" claim_is "$CLAIM_B" jury

step "the drawn jurors vote: sealed commitments first, then the reveals"
# What each juror of the current round should do now: "ROUND PHASE i..." (PHASE: commit,
# reveal or wait). A round that misses its quorum (say, on a very busy machine) is redrawn
# once by the plan, and its jurors vote again; their salts are kept per round.
juror_actions() {
    huzhu jury show "$CLAIM_B" --json | "$PY" -c '
import json, sys, time
jury = json.load(sys.stdin)
keys = json.load(open(sys.argv[1]))["keys"]
first, count = int(sys.argv[2]), int(sys.argv[3])
seats = {seat["member_id"]: seat for seat in jury["seats"]}
now = int(time.time() * 1000)
mine = [i for i in range(first, first + count) if keys[i - 1]["member_id"] in seats]
seat = lambda i: seats[keys[i - 1]["member_id"]]
if now < jury["commit_end_ms"] - 1500:
    phase, todo = "commit", [i for i in mine if not seat(i)["committed"]]
elif jury["commit_end_ms"] + 300 <= now < jury["reveal_end_ms"] - 1500:
    phase, todo = "reveal", [i for i in mine if seat(i)["committed"] and seat(i)["vote"] is None]
else:
    phase, todo = "wait", []
print(jury["round"], phase if todo else "wait", *todo)' "$PEOPLE/keys.json" 11 "$JURORS"
}
# run_jurors ACTION i...: every juror acts at once from their own key, as separate people.
run_jurors() {
    local action="$1"; shift
    local pids=() n=0 failed=0 i vote
    for i in "$@"; do
        if [ "$action" = commit ]; then
            vote=pay
            [ "$n" -eq 0 ] && vote=reject   # one juror believes the objection
            huzhu jury commit "$CLAIM_B" --vote "$vote" --key "$PEOPLE/member-$i.json" --json \
                > "$DOCS/commit-$i.json" &
        else
            huzhu jury reveal "$CLAIM_B" --key "$PEOPLE/member-$i.json" --json \
                > "$DOCS/reveal-$i.json" &
        fi
        pids+=($!)
        n=$((n + 1))
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    return "$failed"
}
deadline=$((SECONDS + STEP_TIMEOUT_S))
dots=0
while claim_is "$CLAIM_B" jury; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for the jury"
    read -r round phase jurors <<< "$(juror_actions)"
    if [ "$phase" != wait ] && [ "$dots" -eq 1 ]; then echo; dots=0; fi
    case "$phase" in
        commit)
            failed=0; run_jurors commit $jurors || failed=$?
            say "round $round: $(($(echo $jurors | wc -w) - failed)) jurors committed" \
                "SHA-256(vote || salt); nobody can see the votes yet"
            ;;
        reveal)
            failed=0; run_jurors reveal $jurors || failed=$?
            say "round $round: $(($(echo $jurors | wc -w) - failed)) votes revealed and" \
                "checked against their commitments"
            ;;
        *)
            [ "$dots" -eq 1 ] || printf '   waiting for the window to close '
            dots=1
            printf '.'
            tick
            sleep 0.5
            ;;
    esac
done
[ "$dots" -eq 0 ] || echo " done"
claim_is_final "$CLAIM_A" || die "claim $CLAIM_A is not final after its notice"
say "claim $CLAIM_A: no objection during its notice, so the review stands ($(claim_status "$CLAIM_A"))"
huzhu jury show "$CLAIM_B"

step "the period ends: the settlement shares the paid claims among all members"
wait_for "the settlement" claim_is "$CLAIM_B" paid
claim_is "$CLAIM_A" paid || wait_for "the payment of claim $CLAIM_A" claim_is "$CLAIM_A" paid
huzhu settlement show latest
say "every active member owes the same share, capped at RMB 7.83 a period (RMB 188 a year);"
say "with only $MEMBERS members the rest carries into later periods (with 100 million, cents)"
MEMBER_20=$(huzhu member show "$PEOPLE/member-20.json" --json)
say "member-20 has paid RMB $(yuan "$(echo "$MEMBER_20" | jget owed_fen)") in shares so far;" \
    "balance RMB $(yuan "$(echo "$MEMBER_20" | jget balance_fen)")"

step "member-5 leaves the plan (no refund; shares already published are still owed)"
huzhu member exit --key "$PEOPLE/member-5.json"

step "anyone holding an evidence file can prove it was anchored, and when"
huzhu evidence verify "$DOCS/claim-a/diagnosis.txt" --claim "$CLAIM_A" --genesis "$NET/genesis.json"
cp "$DOCS/claim-a/diagnosis.txt" "$DOCS/claim-a/diagnosis-altered.txt"
sed -i.bak 's/severe/mild/' "$DOCS/claim-a/diagnosis-altered.txt" && rm -f "$DOCS/claim-a/diagnosis-altered.txt.bak"
set +e
huzhu evidence verify "$DOCS/claim-a/diagnosis-altered.txt" --claim "$CLAIM_A" \
    --genesis "$NET/genesis.json"
altered=$?
set -e
[ "$altered" -eq 2 ] || die "an altered file was not refused (exit $altered)"
say "an altered copy of the file is refused (exit 2)"

step "audit: every block, certificate and signature, and a re-execution of the whole chain"
huzhu audit --genesis "$NET/genesis.json" --node "$NODE_URL" \
    --node "http://127.0.0.1:$((BASE_PORT + 3))" --node "http://127.0.0.1:$((BASE_PORT + 5))" \
    --node "http://127.0.0.1:$((BASE_PORT + 7))"

step "summary"
huzhu status
for claim in "$CLAIM_A" "$CLAIM_B"; do
    CLAIM_JSON=$(huzhu claim show "$claim" --json)
    say "claim $claim: $(echo "$CLAIM_JSON" | jget status) ($(echo "$CLAIM_JSON" | jget outcome))," \
        "RMB $(yuan "$(echo "$CLAIM_JSON" | jget paid_net_fen)") paid to the member"
done
say "the demo took ${SECONDS}s"

if [ "$KEEP" -eq 1 ]; then
    cat <<EOF

The consortium is still running. Explore it:
   export HUZHU_NODE=$NODE_URL
   .venv/bin/huzhu status
   .venv/bin/huzhu claim show $CLAIM_B        .venv/bin/huzhu jury show $CLAIM_B
   .venv/bin/huzhu settlement show latest     .venv/bin/huzhu block show latest
   .venv/bin/huzhu member show $PEOPLE/member-1.json
   .venv/bin/huzhu audit --node $NODE_URL
   curl $NODE_URL/openapi.yaml
Stop it with:
   .venv/bin/huzhu consortium down --dir $NET
EOF
fi

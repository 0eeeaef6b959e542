#!/usr/bin/env bash
# Operator trial (docs/SECURITY.md): farm up --listen 0.0.0.0 in one network
# namespace, a node joining from another with a join token, a job between
# them; then ss, plain-text and TLS probes of every port, and ps checked
# for secrets. Needs root (ip netns), curl and openssl; run after make build.
set -u
cd "$(dirname "$0")/.."
BIN=$PWD/bin/farm
W=/tmp/optrial; rm -rf $W; mkdir -p $W/a $W/b
ip netns del lfA 2>/dev/null; ip netns del lfB 2>/dev/null
ip netns add lfA; ip netns add lfB
ip link add vA type veth peer name vB
ip link set vA netns lfA; ip link set vB netns lfB
ip -n lfA addr add 10.77.0.1/24 dev vA; ip -n lfB addr add 10.77.0.2/24 dev vB
ip -n lfA link set vA up; ip -n lfB link set vB up
ip -n lfA link set lo up; ip -n lfB link set lo up
echo "== farm up in lfA (10.77.0.1)"
ip netns exec lfA $BIN up --listen 0.0.0.0 --advertise 10.77.0.1 --data $W/a/data --nodes 0 >$W/a/up.log 2>&1 &
UP=$!
for i in $(seq 60); do grep -q "Press Ctrl-C" $W/a/up.log && break; sleep 1; done
cat $W/a/up.log | grep -v "^\s*$" | head -30
echo "== copy the join token to 'the other machine' (a file, mode 0600)"
install -m 0600 $W/a/data/join-token $W/b/join-token
echo "== farm node in lfB"
ip netns exec lfB $BIN node --join-token-file $W/b/join-token --renderer loadtest --cache $W/b/cache --ffmpeg none >$W/b/node.log 2>&1 &
NODE=$!
for i in $(seq 30); do ip netns exec lfA $BIN nodes --data $W/a/data 2>/dev/null | grep -q node && break; sleep 1; done
ip netns exec lfA $BIN nodes --data $W/a/data
echo "== a job, submitted in lfA, rendered by the node in lfB"
ip netns exec lfA $BIN submit --data $W/a/data --model tiny --prompt "a harbour at dusk" --seed-start 1 --count 12 --width 64 --height 64 --steps 2 --wait 2>&1 | tail -3
echo "== ss -ltnp in lfA"
ip netns exec lfA ss -ltnp
echo "== plain-text attempts from lfB against each listening port of 10.77.0.1"
for p in $(ip netns exec lfA ss -ltnH | awk '{print $4}' | grep -v '^127\.' | sed 's/.*://' | sort -u); do
  printf 'port %s: ' "$p"
  r=$(ip netns exec lfB curl -s -m 3 -o /dev/null -w '%{http_code}' http://10.77.0.1:$p/ 2>&1); echo -n "http -> ${r:-no answer}; "
  t=$(echo | ip netns exec lfB timeout 3 openssl s_client -connect 10.77.0.1:$p -CAfile $W/a/data/tls/ca.pem 2>&1 | grep -E "Verify return code" | head -1); echo "tls -> ${t:-no TLS}"
done
echo "== ps: command lines of farm processes"
ps -eo pid,args | grep "[b]in/farm"
echo "== secrets on any command line?"
tok=$(python3 -c "import json;d=json.load(open('$W/a/data/credentials.json'));print('\n'.join(v for k,v in d.items() if isinstance(v,str) and any(s in k for s in ('password','secret','token')) and v))")
ps -eo args > $W/ps.txt   # captured first: a grep's own arguments would hold the secret
found=0; for s in $tok; do grep -qF -- "$s" $W/ps.txt && { echo "SECRET FOUND on a command line"; found=1; }; done
[ $found = 0 ] && echo "none of the $(echo "$tok" | wc -l) secrets in credentials.json appears in ps"
kill $NODE; sleep 2; kill $UP; wait 2>/dev/null
ip netns del lfA; ip netns del lfB

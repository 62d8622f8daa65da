#!/bin/sh
# The app port on a swarm node for the private network and this node alone. Swarm publishes host-mode
# ports on every address (no 127.0.0.1: moby #32299), and Docker's DNAT passes by INPUT filters (ufw
# too): DOCKER-USER is the chain Docker leaves to its users. Root, on every node, after Docker starts
# (Docker creates the chain) and again after each reboot: sudo swarm/firewall.sh 10.0.0.0/24 [6868]
set -eu
private=${1:?usage: swarm/firewall.sh PRIVATE-NETWORK/PREFIX [APP_PORT]}
port=${2:-6868}
rule() { # ACTION: -C checks, -D deletes, -I inserts the one rule
  # Matched on the port the client asked for (ctorigdstport): after DNAT the packet's is the task's.
  iptables "$1" DOCKER-USER -p tcp -m conntrack --ctstate NEW --ctorigdstport "$port" \
    ! -s "$private" -m comment --comment "sitekit app port: private network only" -j DROP
}
iptables -L DOCKER-USER -n >/dev/null 2>&1 || { echo "swarm/firewall.sh: no DOCKER-USER chain: is Docker running?" >&2; exit 1; }
while rule -C 2>/dev/null; do rule -D; done  # run again (new network, reboot): one rule, never two
rule -I
echo "swarm/firewall.sh: port $port admits $private and this node's own connections only"

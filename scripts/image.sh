#!/usr/bin/env bash
# A registry's image pinned by its digest, and a site's kept images (scripts/deploy.sh; reusable):
#   resolve REF             print repo@sha256:<digest> for REF (repo:tag or repo@sha256:...), asked of its registry
#   pull REF [SITE]         the same, pulled by that digest (a tag may move; a digest is what CI pushed and tested);
#                           with SITE, also tagged SITE:sha256-<digest>, so `docker image prune` leaves it alone
#   name SITE CONTAINER     what a container runs, as deploy.log records it: a digest reference, else SITE:<tag>
#   prune SITE KEEP...      untag SITE's images but KEEP's (revisions or digest references); a pulled one goes whole
# Errors: one line on stderr ("$IMAGE_CALLER: error: ..."), exit 1, nothing changed.
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) ends the script too: one error line, not two

fail() { echo "${IMAGE_CALLER:-image}: error: $*" >&2; exit 1; }
part='[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*'  # a path component of a repository name (the distribution spec's grammar)
pattern="^([A-Za-z0-9.-]+(:[0-9]+)?/)?$part(/$part)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?$"

repository() { # REF: its repository (no tag, no digest), once REF is known to be a reference
  [[ $1 =~ $pattern ]] ||
    fail "'$1' is not an image reference: give repo@sha256:<64 hex digits> or repo:tag, e.g. ghcr.io/owner/repo@sha256:..."
  local name=${1%@*}
  [[ ${name##*/} != *:* ]] || name=${name%:*}  # the tag (a colon after the last slash, not a registry's port)
  echo "$name"
}
resolve() { # REF
  local repo found
  repo=$(repository "$1")
  docker buildx version >/dev/null 2>&1 ||
    fail "finding the digest of $1 needs docker buildx (apt-get install docker-buildx); or give it: $repo@sha256:..."
  found=$(docker buildx imagetools inspect "$1" 2>&1) || fail "cannot find $1: $(tail -n 1 <<<"$found" | sed "s/^ERROR: //; s|^$1: ||")"
  found=$(sed -n 's/^Digest: *//p' <<<"$found" | head -n 1)  # the first is the image's (an index's, if multi-platform)
  [[ $found == sha256:* ]] || fail "the registry named no digest for $1"
  echo "$repo@$found"
}
pull() { # REF [SITE]
  local image out
  if [[ $1 == *@sha256:* ]]; then image=$(repository "$1")@${1#*@}; else image=$(resolve "$1"); fi
  if ! docker image inspect "$image" >/dev/null 2>&1; then  # here already (a rollback): no registry needed
    out=$(docker pull "$image" 2>&1) ||
      fail "cannot pull $image: $(tail -n 1 <<<"$out" | sed "s/^Error response from daemon: //; s|^manifest for $image ||")"
  fi
  [[ -z ${2:-} ]] || docker tag "$image" "$2:sha256-${image#*@sha256:}"
  echo "$image"
}
name() { # SITE CONTAINER
  local image tag
  image=$(docker inspect -f '{{.Config.Image}}' "$2")
  [[ $image != *@sha256:* ]] || { echo "$image" && return; }  # deployed by digest
  image=$(docker inspect -f '{{.Image}}' "$2")
  # A tag of SITE other than latest (which moves at each deploy); made from its revision if none.
  tag=$(docker image inspect -f '{{range .RepoTags}}{{println .}}{{end}}' "$image" | grep "^$1:" | grep -v ':latest$' | head -n 1) ||
    {
      tag=$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$image")
      tag=$1:${tag:-unknown}
      ! docker image inspect "$tag" >/dev/null 2>&1 || tag=$tag-${image:7:12}  # that name is another build's
      docker tag "$image" "$tag"
    }
  echo "$tag"
}
prune() { # SITE KEEP...
  local site=$1 keep tag refs
  keep=" latest $(printf '%s\n' "${@:2}" | sed 's/^.*@sha256:/sha256-/' | tr '\n' ' ') "  # as tags of SITE
  docker image ls "$site" --format '{{.Tag}}' | while read -r tag; do
    [[ $tag == "<none>" || $keep == *" $tag "* ]] && continue
    # A pulled image's digest reference goes with its tag: nothing of it stays behind.
    mapfile -t refs < <(docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$site:$tag" | grep -F "@${tag/-/:}")
    docker image rm "$site:$tag" "${refs[@]}" >/dev/null || echo "kept $site:$tag"
  done
}

usage="usage: scripts/image.sh resolve REF | pull REF [SITE] | name SITE CONTAINER | prune SITE KEEP..."
case "${1:-}:$#" in
  resolve:2) resolve "$2" ;;
  pull:2 | pull:3) pull "$2" "${3:-}" ;;
  name:3) name "$2" "$3" ;;
  prune:*) (($# >= 2)) || fail "$usage"; prune "${@:2}" ;;
  *) fail "$usage" ;;
esac

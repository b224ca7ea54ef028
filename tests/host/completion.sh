#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
# userspace/chainadm.bash-completion, run by bash-completion the way a
# shell runs it: verbs, global options, each verb's options (read from its
# --help), an option's value as a file, layer arguments as files.  Device
# names need a device: tests/guest/smoke.sh completes one.
. "$(dirname "$0")/host-lib.inc"

BC=/usr/share/bash-completion/bash_completion
[ -r "$BC" ] || { echo "1..0 # SKIP bash-completion not installed (tools/deps)"; exit 4; }

# complete LINE : the words the completion offers at the end of LINE.
complete_line() {
	bash --norc --noprofile -c '
		. "$1"; . "$2"; PATH=$3:$PATH
		COMP_LINE=$4; COMP_POINT=${#COMP_LINE}
		read -r -a COMP_WORDS <<< "$COMP_LINE"
		[ "${COMP_LINE: -1}" = " " ] && COMP_WORDS+=("")
		COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		_chainadm chainadm "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$BC" \
		"$TOP_DIR/userspace/chainadm.bash-completion" "$TOP_DIR/userspace" "$1"
}

# offers DESC LINE WORD... : each WORD is among the offers, nothing else is
# when "=" is the first WORD.
offers() {
	local desc=$1 line=$2 exact= got w missing=
	shift 2
	[ "$1" = "=" ] && { exact=1; shift; }
	got=$(complete_line "$line")
	for w in "$@"; do
		grep -qx -- "$w" <<< "$got" || missing+=" $w"
	done
	if [ -n "$exact" ] && [ "$(grep -c . <<< "$got")" != $# ]; then
		missing+=" (and nothing else)"
	fi
	if [ -z "$missing" ]; then
		pass "$desc"
	else
		fail "$desc" "'$line' offers: $(tr '\n' ' ' <<< "$got")" "missing:$missing"
	fi
}

mkdir -p d && : > d/base.img && : > d/top.img
plan 11
offers "verbs starting with co" "chainadm co" = commit copy
offers "every verb" "chainadm " format info check create remove list status \
	snapshot map pull commit copy job extend monitor recover
offers "global options" "chainadm --" = --nowait --help --version
offers "a verb after --nowait" "chainadm --nowait ex" = extend
offers "copy's options, from its --help" "chainadm copy --" --shallow --raw \
	--reuse-external --pivot --finish --bandwidth --wait --verbose --json
offers "job's options" "chainadm job --p" = --pivot --pause
offers "a file after an option that takes one" "chainadm format --backing d/" \
	= d/base.img d/top.img
offers "a layer file for info" "chainadm info d/t" = d/top.img
offers "no file for the new name create takes first" "chainadm create d/" =
offers "-o: info's columns, from its --help" "chainadm info -o MAPPED" = MAPPED-CLUSTERS
offers "-o: the last name of a comma list" "chainadm status -o NAME,FI" = NAME,FILE
finish

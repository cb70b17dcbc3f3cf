#!/bin/sh
# check_layers.sh - every #include "..." in the product's folders points down
# or into its own folder, as lib/layers.txt allows; and the table itself only
# points down.  Usage: check_layers.sh [SRCDIR]  (default: $PTQC_SRCDIR or ..)
# Exit 0 when the tree keeps the table, 1 with one line per violation.
set -eu
top=${1:-${PTQC_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}}
table=$top/lib/layers.txt
[ -r "$table" ] || { echo "check_layers: $table: cannot read the layer table" >&2; exit 1; }
rules=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$table")
bad=0
tmp_bad=$(mktemp "${TMPDIR:-/tmp}/check_layers.XXXXXX")
trap 'rm -f "$tmp_bad"' EXIT INT TERM
above=" config.h "
# The table: a folder may only name folders defined on earlier lines.
while read -r folder allowed; do
    for a in $allowed; do
        case "$above" in
        *" $a "*) ;;
        *) echo "lib/layers.txt: $folder may include $a, which is not below it"; bad=1 ;;
        esac
    done
    above="$above$folder "
done <<EOT
$rules
EOT
# The code: the folder of a file is the longest table folder that holds it.
folder_of() {
    best=
    for f in $above; do
        case "$1" in "$f"/*) [ ${#f} -gt ${#best} ] && best=$f ;; esac
    done
    printf '%s\n' "$best"
}
files=$(cd "$top" && for f in $above; do [ -d "$f" ] && find "$f" -type f \( -name '*.c' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' \); done | sort -u)
for file in $files; do
    own=$(folder_of "$file")
    [ -n "$own" ] || continue
    allowed=$(printf '%s\n' "$rules" | awk -v f="$own" '$1 == f { $1 = ""; print }')
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$top/$file" | while IFS= read -r hit; do
        line=${hit%%:*}
        inc=$(printf '%s\n' "$hit" | sed 's/.*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/')
        [ "$inc" = config.h ] && target=config.h || target=$(folder_of "$inc")
        case "$inc" in */*) ;; *) [ "$inc" = config.h ] || target=$own ;; esac
        if [ -z "$target" ]; then
            echo "$file:$line: includes \"$inc\", which is in no folder of lib/layers.txt"
            echo x >>"$tmp_bad"
            continue
        fi
        [ "$target" = "$own" ] && continue
        case " $allowed " in
        *" $target "*) ;;
        *) echo "$file:$line: includes \"$inc\": $own may not include $target (lib/layers.txt)"
           echo x >>"$tmp_bad" ;;
        esac
    done
done
[ -s "$tmp_bad" ] && bad=1
if [ "$bad" -ne 0 ]; then
    echo "check_layers: FAIL: the includes above break lib/layers.txt"
    exit 1
fi
echo "check_layers: $(printf '%s\n' "$files" | wc -l | tr -d ' ') files keep lib/layers.txt"

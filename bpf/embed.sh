#!/bin/sh
# embed.sh CLANG SRC OUT_C SYMBOL
# Compiles one bpf/*.bpf.c with clang -target bpf and writes OUT_C, a C file
# defining `const unsigned char SYMBOL[]` and `const unsigned long SYMBOL_len`
# with the object's bytes. Run by Plugins/BPFEmbed during `swift build`
# (and by hand for debugging); nothing it writes is committed.
set -eu
clang=$1 src=$2 out=$3 sym=$4
dir=$(dirname "$src")
tmp="$out.tmp.o"
arch_inc=/usr/include/$(uname -m)-linux-gnu
"$clang" -target bpf -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 \
	-I"$dir" -I"$arch_inc" -c "$src" -o "$tmp"
{
	printf '/* generated from %s by bpf/embed.sh: do not edit */\n' "$(basename "$src")"
	printf 'const unsigned char %s[] __attribute__((aligned(8))) = {\n' "$sym"
	od -An -v -tx1 "$tmp" | sed -e 's/[[:space:]]*$//' -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'
	printf '};\nconst unsigned long %s_len = sizeof(%s);\n' "$sym" "$sym"
} > "$out.tmp"
mv "$out.tmp" "$out"
rm -f "$tmp"

# 256 MiB of stdout between two known lines (the test knows exactly how
# many bytes were printed, so it can check the dropped count), about
# 2.3 MB of result lines before the verdict, and 3 MiB + 6 bytes of
# artefacts.
echo "flood start"
yes "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz" | head -c 268435456
echo "flood end"
echo "a little on stderr" >&2
yes '{"log":"result flood"}' | head -n 100000 >> "$REPRO_RESULT"
head -c 3145728 /dev/zero > "$REPRO_OUT/big.bin"
echo small > "$REPRO_OUT/small.txt"
echo '{"outcome":"not-reproduced","reason":"flooded stdout with 256 MiB"}' >> "$REPRO_RESULT"

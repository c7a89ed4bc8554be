echo "about to crash"
echo c > /proc/sysrq-trigger
sleep 60

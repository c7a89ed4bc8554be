echo "killing sshd"
killall dropbear
sleep 30

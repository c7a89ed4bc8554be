echo "going silent"
sleep 100000

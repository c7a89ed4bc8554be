echo "hanging"
sleep 600

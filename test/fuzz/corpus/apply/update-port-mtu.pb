


p2	net_null2Ð
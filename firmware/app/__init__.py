# Device layer: the only code that touches machine, network, sockets or umqtt.

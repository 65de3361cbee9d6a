
S
{level="info",app="jstest"}4
®ªˆØÀÏ ¥$hello protobuf loki {"level":"info"}
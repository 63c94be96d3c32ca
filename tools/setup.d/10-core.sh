# The datapath and the node agent: clang/libbpf to build and load the eBPF
# programs, iproute2 for links and tc, busybox-static for ping/nc/httpd inside
# test namespaces, iperf3 and iptables for the datapath benchmark.
APT_PACKAGES+=(make clang llvm libbpf-dev libbpf1 bpftool iproute2 iperf3 busybox-static iptables procps)
# (pyroute2, the node side's library, is a base dependency of bayctl)

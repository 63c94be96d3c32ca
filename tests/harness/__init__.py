"""The test harness: fixture plugins (fixtures_*.py, registered in tests/conftest.py),
the namespace lab (netlab), the cloud tier (cloudtier/: real keystone, glance, heat,
Magnum), the emulators of the services that cannot run here (emulators/), the qemu
tier (plugin_qemu*), prerequisites (prereq) and the checks that the tests run this
tree's code (tree_check, tree_cni). Tests import it as `harness.<module>`; bench/
too, through bench/benchpath.py."""

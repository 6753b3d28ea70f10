fn main() {
    cni_protocol::skel::main(&portmap::Portmap, "portmap")
}

"""The smallest image a real Nova can boot here: a 1 MiB raw disk whose boot sector writes one
line to the first serial port (COM1, where Nova's libvirt guest has its console log) and halts.

No download (cirros is not on Debian or PyPI): 28 bytes of real-mode x86, assembled by hand:

    cli; cld; xor ax,ax; mov ds,ax      ; DS=0: the string is addressed from 0x7c00
    mov si,msg; mov dx,0x3f8            ; COM1's data port
    next: lodsb; test al,al; jz halt; out dx,al; jmp next
    halt: hlt; jmp halt
    msg: db MARKER, 13, 10, 0

The guest's `console log` (Nova's os-getConsoleOutput) then holds MARKER: proof the disk Glance
served was booted by qemu under libvirt, not only that a domain was defined.
"""

import struct

MARKER = b"bayctl-bootsector-ok"
SIZE = 1024 * 1024


def image_bytes(marker=MARKER):
    code = bytes([0xFA, 0xFC, 0x31, 0xC0, 0x8E, 0xD8,          # cli cld xor ax,ax mov ds,ax
                  0xBE, 0x17, 0x7C,                            # mov si, 0x7c17 (msg)
                  0xBA, 0xF8, 0x03,                            # mov dx, 0x3f8
                  0xAC, 0x84, 0xC0, 0x74, 0x03, 0xEE, 0xEB, 0xF8,  # next: lodsb test jz out jmp
                  0xF4, 0xEB, 0xFD])                           # halt: hlt jmp halt
    assert len(code) == 0x17
    sector = code + marker + b"\r\n\0"
    # One partition entry (Linux, LBA 1 to the end): Glance's format inspector takes a boot
    # sector for an MBR/GPT disk and refuses one without partitions ("GPT MBR has no partitions
    # defined", HTTP 415 on upload).
    partition = struct.pack("<B3BB3BII", 0x00, 0, 2, 0, 0x83, 0, 0, 0, 1, SIZE // 512 - 1)
    sector = sector.ljust(446, b"\0") + partition.ljust(64, b"\0") + b"\x55\xaa"
    return sector.ljust(SIZE, b"\0")

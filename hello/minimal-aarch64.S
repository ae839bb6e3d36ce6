/*
 * minimal-aarch64.S -- minimal.S for AArch64 (arm64) Linux: the smallest
 * "hello!\n" we could make that runs on an arm64 kernel and, on an x86-64
 * machine, under qemu-user through binfmt_misc.
 *
 * Hand-written like minimal.S: the 64-byte ELF header, one 56-byte program
 * header (PT_LOAD) and 32 bytes of code, 136 bytes in all.  Build (the
 * hello-minimal target picks this file where `uname -m` says aarch64):
 *
 *     as -o minimal.o minimal-aarch64.S
 *     objcopy -O binary -j .text minimal.o hello-minimal
 *
 * Why it is 22 bytes larger than the x86-64 one:
 *   - Every AArch64 instruction is 4 bytes, aligned to 4: there are no
 *     1- and 2-byte encodings (minimal.S's push/pop pairs), and a piece of
 *     code squeezed into a header field must end in a 4-byte branch.  The
 *     only 4-aligned fields nobody reads are e_version and e_flags (4 bytes
 *     each: a lone branch, no room for work), p_paddr and p_align (8
 *     bytes each).  So no code goes into the ELF header at all.
 *   - Emulation reads more of the header than the kernel does.  The
 *     binfmt_misc entry qemu-user-static registers matches e_ident[0..6]
 *     and e_ident[8..15] (its mask leaves out EI_OSABI alone), so the
 *     padding must be zeros: no message there.  qemu's loader
 *     (linux-user/elfload.c, elf_check_ident, elf_check_ehdr) also checks
 *     EI_CLASS, EI_DATA, EI_VERSION, e_ehsize == 64 and e_phentsize == 56.
 *     An arm64 kernel reads no more than the x86-64 one (see minimal.S).
 *
 * The tricks that remain, each in a field neither the kernel nor qemu reads:
 *   1. The program header starts at offset 56, inside the ELF header,
 *      exactly as in minimal.S (p_type = 1 is e_phnum = 1, p_flags = 5
 *      is e_shnum = 5; e_shoff = 0, so no tool looks for sections).
 *   2. The message lives in p_paddr (8 bytes, unspecified for executables).
 *   3. The code starts in p_align (ignored for ET_EXEC; and 8 code bytes
 *      are no power of two, so alignment logic would skip them anyway)
 *      and runs on past the headers: 24 bytes outside them.
 *
 * Like minimal.S it assumes no register is zero at entry (every register a
 * system call reads is set), exits with exit(0) whatever write returned,
 * maps one R+X segment at 0x400000 (p_offset 0, p_filesz == p_memsz == the
 * file) and needs no privilege, no writable memory and no stack.
 */

	.text

	.set BASE, 0x400000		/* p_vaddr: where offset 0 is mapped */

ehdr:
/* ---- ELF header (Elf64_Ehdr), 64 bytes ---- */
/* 0  */ .byte 0x7f, 0x45, 0x4c, 0x46	/* "\177ELF": checked */
/* 4  */ .byte 2			/* EI_CLASS   = ELFCLASS64: checked by qemu */
/* 5  */ .byte 1			/* EI_DATA    = ELFDATA2LSB: checked by qemu */
/* 6  */ .byte 1			/* EI_VERSION = EV_CURRENT: checked by qemu */
/* 7  */ .byte 0			/* EI_OSABI   = System V */
/* 8  */ .quad 0			/* EI_ABIVERSION, EI_PAD: zeros for binfmt_misc's mask */
/* 16 */ .short 2			/* e_type    = ET_EXEC: checked */
/* 18 */ .short 183			/* e_machine = EM_AARCH64: checked */
/* 20 */ .long 1			/* e_version (never read) */
/* 24 */ .quad BASE + (entry - ehdr)	/* e_entry: checked (must be mapped) */
/* 32 */ .quad phdr - ehdr		/* e_phoff = 56: checked */
/* 40 */ .quad 0			/* e_shoff = 0: no section headers */
/* 48 */ .long 0			/* e_flags (no AArch64 flags) */
/* 52 */ .short 64			/* e_ehsize: checked by qemu */
/* 54 */ .short 56			/* e_phentsize = sizeof(Elf64_Phdr): checked */

/* ---- program header (Elf64_Phdr), 56 bytes, overlapping (trick 1) ---- */
	.org	56
phdr:	.long 1				/* p_type  = PT_LOAD;  = e_phnum 1, e_shentsize 0 */
/* 60 */ .long 5			/* p_flags = PF_R|PF_X; = e_shnum 5, e_shstrndx 0 */
/* 64 */ .quad 0			/* p_offset = 0: map from the first byte */
/* 72 */ .quad BASE			/* p_vaddr: page aligned, >= 64 KiB */
/* 80 */
msg:	.ascii "hello!\n"		/* p_paddr: the message (trick 2) */
msg_end:
	.set MSG_LEN, msg_end - msg	/* = 7 */
	.byte 0
/* 88 */ .quad file_end - ehdr		/* p_filesz = whole file */
/* 96 */ .quad file_end - ehdr		/* p_memsz  = p_filesz: no bss */

/* 104: p_align (not used for ET_EXEC): the code starts here (trick 3). */
	.org	104
entry:
	mov	x0, #1			/* fd 1 = stdout */
	adr	x1, msg			/* PC-relative: the message in p_paddr */
	mov	x2, #MSG_LEN		/* 7 bytes */
	mov	x8, #64			/* __NR_write */
	svc	#0			/* write(1, msg, 7) */
	mov	x0, #0			/* status 0, whatever write returned */
	mov	x8, #93			/* __NR_exit */
	svc	#0			/* exit(0): does not return */
file_end:

	.if MSG_LEN != 7
	.error "message must be 7 bytes"
	.endif

/*
 * minimal.S -- the smallest "hello!\n" for x86-64 Linux we could make
 * without relying on anything the kernel does not check or guarantee.
 *
 * The whole file is hand-written: the 64-byte ELF header, one 56-byte
 * program header (PT_LOAD) and 22 bytes of code, all in this one source.
 * There is no libc, no crt0, no section header table, no symbol table,
 * no .note, no .comment: the file is exactly the bytes emitted below,
 * 114 bytes in all.  Build (see the hello-minimal target):
 *
 *     as --64 -o minimal.o minimal.S
 *     objcopy -O binary -j .text minimal.o hello-minimal
 *     chmod +x hello-minimal
 *
 * objcopy -O binary dumps the raw contents of .text and nothing else.
 * Every address below is a constant or a difference of two labels in
 * this one section, so as(1) resolves them all itself: minimal.o has no
 * relocations (check: readelf -r minimal.o) and no linker is needed.
 *
 * What the kernel looks at (fs/binfmt_elf.c, load_elf_binary() and
 * load_elf_phdrs(); x86-64, all kernels from 2.6 to 6.x):
 *   ELF header:  e_ident[0..3] == "\177ELF" (nothing else of e_ident),
 *                e_type == ET_EXEC or ET_DYN, e_machine == EM_X86_64
 *                (elf_check_arch), e_phentsize == 56, 1 <= e_phnum and
 *                e_phnum * 56 <= 64 KiB, e_phoff (the 56 * e_phnum bytes
 *                there must all be readable from the file), e_entry.
 *   each phdr:   p_type (PT_INTERP / PT_GNU_STACK / PT_LOAD / arch),
 *                and for PT_LOAD: p_flags (only PF_R, PF_W, PF_X become
 *                mmap protections), p_offset, p_vaddr, p_filesz, p_memsz
 *                (p_filesz <= p_memsz, the segment must fit below
 *                TASK_SIZE); p_align only for ET_DYN (load address
 *                alignment), and even there non-powers of two are skipped.
 * What it never reads: e_ident[4..15] (class, data, version, OS/ABI,
 * padding), e_version, e_shoff, e_flags (no x86 meaning), e_ehsize,
 * e_shentsize, e_shnum, e_shstrndx (execve never looks at sections),
 * p_paddr (the gABI itself says its contents are unspecified for
 * executables) and, for ET_EXEC, p_align.
 *
 * The byte-saving tricks, each only in a field from the second list:
 *   1. The message lives in the e_ident padding (bytes 9..15, 7 bytes --
 *      exactly "hello!\n").  Class (64-bit), data (LSB) and EI_VERSION
 *      stay correct, so file(1) and readelf(1) still identify the file:
 *      "ELF 64-bit LSB executable, x86-64, (SYSV), statically linked,
 *      corrupted section header size" -- file(1) omits "version 1"
 *      because e_version holds code (trick 3), and calls the section
 *      header size corrupted because of trick 2 (e_shnum 5, e_shentsize
 *      0); both are fields execve never reads.
 *   2. The program header starts at offset 56, inside the ELF header:
 *      its first 8 bytes (p_type = 1 = PT_LOAD, p_flags = 5 = R+X) are
 *      also the last 8 bytes of the ELF header, read as e_phnum = 1
 *      (exactly what we need), e_shentsize = 0, e_shnum = 5 and
 *      e_shstrndx = 0 (the last three are never read by the kernel;
 *      e_shoff = 0 says there is no section header table, so tools do
 *      not go looking for one).
 *      Saves 8 bytes.
 *   3. The code is cut into four pieces placed in ignored fields,
 *      chained with 2-byte short jumps: e_version (4 bytes), e_flags +
 *      e_ehsize (6 bytes), p_paddr (8 bytes) and p_align (8 bytes),
 *      running 2 bytes past the end of the headers.  The 8 code bytes in
 *      p_align are not a power of two, so even the ET_DYN alignment
 *      logic, if it were ever applied to ET_EXEC, would skip them.
 *   4. Short encodings: "push imm8; pop reg" (3 bytes) instead of
 *      "mov reg, imm32" (5); "push rax; pop rdi" (2 bytes) copies rax,
 *      and being two 1-byte instructions it can be split across pieces;
 *      "mov esi, imm32" (5) for the message address, because the image
 *      sits below 4 GiB and writing a 32-bit register zero-extends.
 *
 * What it deliberately does not do, because the kernel does not promise
 * it (or it would not run everywhere):
 *   - It does not assume registers are zero at entry.  Linux happens to
 *     clear them (ELF_PLAT_INIT), but the x86-64 psABI leaves every
 *     register except rsp (and rdx, for a dynamic linker) unspecified,
 *     so every register a syscall reads is set here explicitly.
 *   - It does not use "mov al, 60" after write: if write fails (stdout
 *     closed: rax = -EBADF) that would give a bogus syscall number and
 *     the program would run off the end; "push 60; pop rax" always works.
 *   - The segment is mapped R+X only, never writable: no W+X mapping,
 *     nothing that needs privileges, fine on a read-only root as any
 *     unprivileged user (uid 65534, no capabilities).
 *   - p_vaddr = 0x400000: page aligned, far above vm.mmap_min_addr
 *     (4096 or 65536 on usual kernels), far below TASK_SIZE; p_offset = 0,
 *     so p_offset == p_vaddr (mod page size) as mmap requires.
 *   - p_filesz == p_memsz == the file size: the mapping never reaches past
 *     the end of the file (no SIGBUS), and there is no bss to zero.
 *   - ET_EXEC (fixed address, no relocation), no PT_INTERP (static), no
 *     PT_GNU_STACK: the stack is only pushed to and popped from, never
 *     executed, so it runs whether the kernel then makes the stack
 *     non-executable (x86-64 since 5.8) or sets READ_IMPLIES_EXEC (older).
 *   - It ends with exit (60), which does not return, so nothing after
 *     the last syscall is ever executed.
 *
 * All comments are C-style, which as(1) and cpp both understand, so
 * "gcc -c minimal.S" (which runs cpp first) gives the same bytes.
 */

	.intel_syntax noprefix
	.code64
	.text

	.set BASE, 0x400000		/* p_vaddr: where offset 0 is mapped */

ehdr:
/* ---- ELF header (Elf64_Ehdr), 64 bytes, offsets in the left column ---- */
/* 0  */ .byte 0x7f, 0x45, 0x4c, 0x46	/* e_ident[0..3] "\177ELF": checked */
/* 4  */ .byte 2			/* EI_CLASS   = ELFCLASS64 (for tools) */
/* 5  */ .byte 1			/* EI_DATA    = ELFDATA2LSB (for tools) */
/* 6  */ .byte 1			/* EI_VERSION = EV_CURRENT (for tools) */
/* 7  */ .byte 0			/* EI_OSABI   = System V */
/* 8  */ .byte 0			/* EI_ABIVERSION */
/* 9  */
msg:	.ascii "hello!\n"		/* EI_PAD: 7 ignored bytes (trick 1) */
msg_end:
	.set MSG_LEN, msg_end - msg	/* = 7 */
/* 16 */ .short 2			/* e_type    = ET_EXEC: checked */
/* 18 */ .short 62			/* e_machine = EM_X86_64: checked */

/* 20: e_version (4 bytes, never read) holds the first piece of code.
 * e_entry points here.  Push 7, the length; it is popped into rdx last,
 * after the 1 pushed below it has been popped into rdi (stack: LIFO). */
entry:
	push	7			/* 6a 07 */
	jmp	code2			/* eb xx: on to e_flags */
	.org	24, 0xcc		/* assert the piece fit */

/* 24 */ .quad BASE + (entry - ehdr)	/* e_entry: checked (must be mapped) */
/* 32 */ .quad phdr - ehdr		/* e_phoff = 56: checked */
/* 40 */ .quad 0			/* e_shoff = 0: no section headers */

/* 48: e_flags (4) + e_ehsize (2) = 6 ignored bytes: second piece. */
code2:
	push	1			/* 6a 01 */
	pop	rax			/* 58     rax = 1 = SYS_write */
	push	rax			/* 50     push a copy of the 1 for rdi */
	jmp	code3			/* eb xx: on to p_paddr */
	.org	54, 0xcc

/* 54 */ .short 56			/* e_phentsize = sizeof(Elf64_Phdr): checked */

/* ---- program header (Elf64_Phdr), 56 bytes, overlapping (trick 2) ---- */
	.org	56			/* assert: phdr at 56 */
phdr:	.long 1				/* p_type  = PT_LOAD;  = e_phnum 1, e_shentsize 0 */
/* 60 */ .long 5			/* p_flags = PF_R|PF_X; = e_shnum 5, e_shstrndx 0 */
/* 64 */ .quad 0			/* p_offset = 0: map from the first byte */
/* 72 */ .quad BASE			/* p_vaddr: page aligned, >= 64 KiB */

/* 80: p_paddr (8 bytes, unspecified for executables): third piece. */
code3:
	mov	esi, BASE + (msg - ehdr)	/* be imm32  rsi = &msg (zero-extended) */
	pop	rdi			/* 5f     rdi = 1 = stdout */
	jmp	code4			/* eb xx: on to p_align */
	.org	88, 0xcc

/* 88 */ .quad file_end - ehdr		/* p_filesz = whole file */
/* 96 */ .quad file_end - ehdr		/* p_memsz  = p_filesz: no bss */

/* 104: p_align (8 bytes, not used for ET_EXEC): last piece, which runs
 * 2 bytes past the headers -- the only bytes of the file outside them. */
	.org	104			/* assert: p_align at 104 */
code4:
	pop	rdx			/* 5a     rdx = 7 = length */
	syscall				/* 0f 05  write(1, msg, 7) */
	push	60			/* 6a 3c */
	pop	rax			/* 58     rax = 60 = SYS_exit, whatever write returned */
	xor	edi, edi		/* 31 ff  status 0 */
	syscall				/* 0f 05  exit(0): does not return */
file_end:

/* The .org lines above assert the layout: as stops with "attempt to move
 * .org backwards" if a piece of code outgrows its field (for instance if a
 * jmp were not encoded short), and the fixed-size data between them pins
 * every other offset.  The message length is checked here: */
	.if MSG_LEN != 7
	.error "message must be 7 bytes"
	.endif

/* The real glibc malloc family, for the glibc backend in sanitizer builds.
 *
 * In a plain build glibc is the process malloc and the glibc backend calls it directly. In a sanitizer
 * build the process malloc is the sanitizer's, which is no oracle (ASan aborts on an impossible size
 * and rejects aligned_alloc sizes glibc accepts). dlsym cannot help: for a library loaded at start-up
 * it searches the global scope, where the sanitizer's malloc comes first. So the definitions are
 * looked up in libc.so.6's own dynamic symbol table (GNU hash, default symbol version).
 *
 * glibc's reallocarray calls realloc through the PLT, which in a sanitizer build is the sanitizer's:
 * it is replaced by the same overflow check in front of glibc's realloc. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <gnu/lib-names.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interp.h"

typedef struct libc_image {
    ElfW(Addr) base;
    const ElfW(Sym) *symtab;
    const char *strtab;
    const uint32_t *gnu_hash;
    const ElfW(Half) *versym;
} libc_image_t;

static int find_libc(struct dl_phdr_info *info, size_t size, void *data)
{
    libc_image_t *img = data;
    const char *slash = strrchr(info->dlpi_name, '/');
    const char *file = slash ? slash + 1 : info->dlpi_name;
    if (strcmp(file, LIBC_SO) != 0)
        return 0;
    img->base = info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC)
            continue;
        for (const ElfW(Dyn) *d = (const void *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr); d->d_tag != DT_NULL;
             d++) {
            /* ld.so relocates these entries in place; an unrelocated one lies below the load base. */
            ElfW(Addr) a = d->d_un.d_ptr < info->dlpi_addr ? d->d_un.d_ptr + info->dlpi_addr : d->d_un.d_ptr;
            if (d->d_tag == DT_SYMTAB)
                img->symtab = (const void *)a;
            if (d->d_tag == DT_STRTAB)
                img->strtab = (const void *)a;
            if (d->d_tag == DT_GNU_HASH)
                img->gnu_hash = (const void *)a;
            if (d->d_tag == DT_VERSYM)
                img->versym = (const void *)a;
        }
    }
    return 1;
}

static void *lookup(const libc_image_t *img, const char *name)
{
    uint32_t h = 5381;
    for (const char *c = name; *c; c++)
        h = h * 33 + (unsigned char)*c;
    const uint32_t nbuckets = img->gnu_hash[0], symoffset = img->gnu_hash[1], bloom_words = img->gnu_hash[2];
    const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(img->gnu_hash + 4) + bloom_words);
    const uint32_t *chain = buckets + nbuckets;
    uint32_t i = buckets[h % nbuckets];
    if (i < symoffset)
        return NULL;
    for (;; i++) {
        const ElfW(Sym) *sym = &img->symtab[i];
        uint32_t ch = chain[i - symoffset];
        if ((ch | 1) == (h | 1) && strcmp(img->strtab + sym->st_name, name) == 0 && sym->st_shndx != SHN_UNDEF &&
            ELF64_ST_TYPE(sym->st_info) == STT_FUNC && (!img->versym || (img->versym[i] & 0x8000) == 0))
            return (void *)(img->base + sym->st_value);
        if (ch & 1)
            return NULL;
    }
}

static void *(*libc_realloc)(void *, size_t);

static void *libc_reallocarray(void *p, size_t n, size_t s)
{
    size_t t;
    if (__builtin_mul_overflow(n, s, &t)) {
        errno = ENOMEM;
        return NULL;
    }
    return libc_realloc(p, t);
}

int hk_interp_libc_resolve(hk_backend_t *be)
{
    libc_image_t img;
    memset(&img, 0, sizeof img);
    if (!dl_iterate_phdr(find_libc, &img) || !img.symtab || !img.strtab || !img.gnu_hash)
        return -1;
    hk_backend_t b = *be;
#define GET(field, name)                                                                                      \
    do {                                                                                                      \
        void *f_ = lookup(&img, name);                                                                        \
        if (!f_)                                                                                              \
            return -1;                                                                                        \
        memcpy(&b.field, &f_, sizeof f_);                                                                     \
    } while (0)
    GET(malloc_fn, "malloc");
    GET(free_fn, "free");
    GET(calloc_fn, "calloc");
    GET(realloc_fn, "realloc");
    GET(posix_memalign_fn, "posix_memalign");
    GET(aligned_alloc_fn, "aligned_alloc");
    GET(memalign_fn, "memalign");
    GET(valloc_fn, "valloc");
    GET(pvalloc_fn, "pvalloc");
    GET(usable_fn, "malloc_usable_size");
#undef GET
    libc_realloc = b.realloc_fn;
    b.reallocarray_fn = libc_reallocarray;
    *be = b;
    return 0;
}

#ifdef HK_VERIFY_REAL_LIBC
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void use_real_libc(void)
{
    if (hk_interp_libc_resolve(&hk_backend_glibc) != 0)
        fprintf(stderr, "hakmem_verify: %s's malloc family not found; the glibc backend is the process "
                        "malloc (the sanitizer's)\n", LIBC_SO);
}

/* At load time (so code that reads hk_backend_glibc's fields directly sees glibc's), and again from
 * hk_interp_init: the call from there is what links this object out of the static library. */
__attribute__((constructor)) void hk_interp_libc_ensure(void)
{
    pthread_once(&once, use_real_libc);
}
#else
void hk_interp_libc_ensure(void)
{
}
#endif

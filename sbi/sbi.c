/* sbi.c - SBI calls: the ecall convention and the error mapping. */
#include "sbi.h"

#include "err.h"

/* SBI error codes (spec 3.2). */
#define SBI_SUCCESS              0
#define SBI_ERR_FAILED          -1
#define SBI_ERR_NOT_SUPPORTED   -2
#define SBI_ERR_INVALID_PARAM   -3
#define SBI_ERR_DENIED          -4
#define SBI_ERR_INVALID_ADDRESS -5
#define SBI_ERR_ALREADY_AVAILABLE -6
#define SBI_ERR_ALREADY_STARTED -7
#define SBI_ERR_ALREADY_STOPPED -8

struct sbiret {
	long error;
	long value;
};

static struct sbi_info info;

static struct sbiret ecall(long ext, long fid, unsigned long a0, unsigned long a1,
			   unsigned long a2, unsigned long a3, unsigned long a4)
{
	register unsigned long r0 __asm__("a0") = a0;
	register unsigned long r1 __asm__("a1") = a1;
	register unsigned long r2 __asm__("a2") = a2;
	register unsigned long r3 __asm__("a3") = a3;
	register unsigned long r4 __asm__("a4") = a4;
	register unsigned long r6 __asm__("a6") = fid;
	register unsigned long r7 __asm__("a7") = ext;

	__asm__ volatile("ecall"
			 : "+r"(r0), "+r"(r1)
			 : "r"(r2), "r"(r3), "r"(r4), "r"(r6), "r"(r7)
			 : "memory");
	return (struct sbiret){ (long)r0, (long)r1 };
}

static int map_err(long e)
{
	switch (e) {
	case SBI_SUCCESS:               return E_OK;
	case SBI_ERR_NOT_SUPPORTED:     return E_NOTSUP;
	case SBI_ERR_INVALID_PARAM:     return E_INVAL;
	case SBI_ERR_DENIED:            return E_DENIED;
	case SBI_ERR_INVALID_ADDRESS:   return E_FAULT;
	case SBI_ERR_ALREADY_AVAILABLE:
	case SBI_ERR_ALREADY_STARTED:
	case SBI_ERR_ALREADY_STOPPED:   return E_BUSY;
	default:                        return E_FAILED;
	}
}

long sbi_probe_extension(long ext)
{
	struct sbiret r = ecall(SBI_EXT_BASE, 3, ext, 0, 0, 0, 0);
	return r.error ? 0 : r.value != 0;
}

void sbi_probe(struct sbi_info *out)
{
	struct sbiret r = ecall(SBI_EXT_BASE, 0, 0, 0, 0, 0, 0);

	info.spec_major = (r.value >> 24) & 0x7f;
	info.spec_minor = r.value & 0xffffff;
	info.impl_id = ecall(SBI_EXT_BASE, 1, 0, 0, 0, 0, 0).value;
	info.impl_version = ecall(SBI_EXT_BASE, 2, 0, 0, 0, 0, 0).value;
	info.has_time = sbi_probe_extension(SBI_EXT_TIME);
	info.has_ipi = sbi_probe_extension(SBI_EXT_IPI);
	info.has_rfence = sbi_probe_extension(SBI_EXT_RFENCE);
	info.has_hsm = sbi_probe_extension(SBI_EXT_HSM);
	info.has_srst = sbi_probe_extension(SBI_EXT_SRST);
	info.has_dbcn = sbi_probe_extension(SBI_EXT_DBCN);
	if (out)
		*out = info;
}

const struct sbi_info *sbi_get_info(void)
{
	return &info;
}

const char *sbi_impl_name(unsigned long id)
{
	static const char *const names[] = {
		"Berkeley Boot Loader", "OpenSBI", "Xvisor", "KVM", "RustSBI",
		"Diosix", "Coffer",
	};
	return id < sizeof(names) / sizeof(names[0]) ? names[id] : "unknown";
}

void sbi_console_putchar(int ch)
{
	ecall(SBI_EXT_LEGACY_PUTCHAR, 0, (unsigned long)ch, 0, 0, 0, 0);
}

void sbi_console_write(const char *s, unsigned long pa, unsigned long n)
{
	if (info.has_dbcn) {
		struct sbiret r = ecall(SBI_EXT_DBCN, 0, n, pa, 0, 0, 0);
		if (r.error == SBI_SUCCESS && (unsigned long)r.value == n)
			return;
		/* a partial write falls back to the legacy call for the rest */
		if (r.error == SBI_SUCCESS && (unsigned long)r.value < n) {
			s += r.value;
			n -= r.value;
		}
	}
	for (unsigned long i = 0; i < n; i++)
		sbi_console_putchar(s[i]);
}

int sbi_set_timer(uint64_t stime)
{
	if (info.has_time)
		return map_err(ecall(SBI_EXT_TIME, 0, stime, 0, 0, 0, 0).error);
	ecall(0x00, 0, stime, 0, 0, 0, 0);   /* legacy set_timer */
	return E_OK;
}

int sbi_send_ipi(unsigned long hart_mask, unsigned long hart_base)
{
	return map_err(ecall(SBI_EXT_IPI, 0, hart_mask, hart_base, 0, 0, 0).error);
}

int sbi_remote_fence_i(unsigned long hart_mask, unsigned long hart_base)
{
	return map_err(ecall(SBI_EXT_RFENCE, 0, hart_mask, hart_base, 0, 0, 0).error);
}

int sbi_remote_sfence_vma(unsigned long hart_mask, unsigned long hart_base,
			  unsigned long start, unsigned long size)
{
	return map_err(ecall(SBI_EXT_RFENCE, 1, hart_mask, hart_base, start, size, 0).error);
}

int sbi_remote_sfence_vma_asid(unsigned long hart_mask, unsigned long hart_base,
			       unsigned long start, unsigned long size,
			       unsigned long asid)
{
	return map_err(ecall(SBI_EXT_RFENCE, 2, hart_mask, hart_base, start, size, asid).error);
}

int sbi_hart_start(unsigned long hartid, unsigned long start_pa, unsigned long opaque)
{
	return map_err(ecall(SBI_EXT_HSM, 0, hartid, start_pa, opaque, 0, 0).error);
}

int sbi_hart_stop(void)
{
	return map_err(ecall(SBI_EXT_HSM, 1, 0, 0, 0, 0, 0).error);
}

int sbi_hart_get_status(unsigned long hartid)
{
	struct sbiret r = ecall(SBI_EXT_HSM, 2, hartid, 0, 0, 0, 0);
	return r.error ? map_err(r.error) : (int)r.value;
}

int sbi_system_reset(unsigned type, unsigned reason)
{
	return map_err(ecall(SBI_EXT_SRST, 0, type, reason, 0, 0, 0).error);
}

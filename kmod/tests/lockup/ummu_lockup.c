// SPDX-License-Identifier: GPL-2.0
/*
 * ummu_lockup: hang the calling CPU on request, so the guest harness can
 * check that it notices a hung guest quickly and reports every CPU's
 * backtrace.  Not a driver; only scripts/test-harness loads it.
 *
 * Writing N to /sys/kernel/debug/ummu_lockup/spin_preempt spins the writer's
 * CPU for N seconds with preemption disabled (a soft lockup after 20 s);
 * spin_irq does the same with interrupts disabled as well (an RCU stall).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/irqflags.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/smp.h>
#include <linux/timekeeping.h>
#include <linux/uaccess.h>

#define UMMU_LOCKUP_MAX_SECONDS 600

static struct dentry *ummu_lockup_dir;

static void ummu_lockup_spin(unsigned int seconds, bool irqs_off)
{
	unsigned long flags = 0;
	u64 end;

	preempt_disable();
	if (irqs_off)
		local_irq_save(flags);
	pr_emerg("spinning on CPU %d for %u s, %s\n", smp_processor_id(),
		 seconds, irqs_off ? "interrupts off" : "preemption off");
	/*
	 * The clocksource itself: local_clock() stops at the last tick when
	 * this CPU takes no interrupts, and the spin would never end.
	 */
	end = ktime_get_mono_fast_ns() + (u64)seconds * NSEC_PER_SEC;
	while (ktime_get_mono_fast_ns() < end)
		cpu_relax();
	if (irqs_off)
		local_irq_restore(flags);
	preempt_enable();
}

static ssize_t ummu_lockup_write(struct file *file, const char __user *buf,
				 size_t count, loff_t *ppos)
{
	unsigned int seconds;
	int ret;

	ret = kstrtouint_from_user(buf, count, 0, &seconds);
	if (ret)
		return ret;
	if (seconds > UMMU_LOCKUP_MAX_SECONDS)
		return -EINVAL;
	ummu_lockup_spin(seconds, !!file->private_data);
	return count;
}

static const struct file_operations ummu_lockup_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.write = ummu_lockup_write,
};

static int __init ummu_lockup_init(void)
{
	ummu_lockup_dir = debugfs_create_dir("ummu_lockup", NULL);
	debugfs_create_file("spin_preempt", 0200, ummu_lockup_dir, NULL,
			    &ummu_lockup_fops);
	/* Any non-NULL private pointer selects interrupts off. */
	debugfs_create_file("spin_irq", 0200, ummu_lockup_dir,
			    ummu_lockup_dir, &ummu_lockup_fops);
	return 0;
}

static void __exit ummu_lockup_exit(void)
{
	debugfs_remove_recursive(ummu_lockup_dir);
}

module_init(ummu_lockup_init);
module_exit(ummu_lockup_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Hang a CPU on request (guest harness self-test)");

// SPDX-License-Identifier: GPL-2.0-only
/*
 * sysfs attributes of /sys/class/cxl_pnm/pnmN (geometry, counters, state)
 * and the debugfs file cxl_pnm/pnmN/queues (state of each hardware queue).
 *
 * Both are removed at the start of remove, before the device memory is
 * unmapped; sysfs and debugfs wait for readers in progress.
 */
#include <linux/debugfs.h>
#include <linux/seq_file.h>
#include <linux/sysfs.h>
#include "pnm_private.h"

static const char *const pnm_state_names[] = {
	[PNM_STATE_LIVE] = "live",
	[PNM_STATE_DEAD] = "dead",
	[PNM_STATE_REMOVED] = "removed",
};

static ssize_t pnm_emit_u64(char *buf, u64 value)
{
	return sysfs_emit(buf, "%llu\n", value);
}

static ssize_t nr_queues_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, to_pnm_dev(dev)->nr_queues);
}
static DEVICE_ATTR_RO(nr_queues);

static ssize_t queue_depth_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, to_pnm_dev(dev)->queue_depth);
}
static DEVICE_ATTR_RO(queue_depth);

static ssize_t kv_size_show(struct device *dev,
			    struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, to_pnm_dev(dev)->kv_size);
}
static DEVICE_ATTR_RO(kv_size);

static ssize_t kv_free_show(struct device *dev,
			    struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, pnm_pool_free_bytes(to_pnm_dev(dev)));
}
static DEVICE_ATTR_RO(kv_free);

static ssize_t hw_version_show(struct device *dev,
			       struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, to_pnm_dev(dev)->hw_version);
}
static DEVICE_ATTR_RO(hw_version);

/* Read from the device on each access. */
static ssize_t heartbeat_show(struct device *dev,
			      struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, pnm_hw_heartbeat(to_pnm_dev(dev)));
}
static DEVICE_ATTR_RO(heartbeat);

static ssize_t cmds_submitted_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, atomic64_read(&to_pnm_dev(dev)->submitted));
}
static DEVICE_ATTR_RO(cmds_submitted);

static ssize_t cmds_completed_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, atomic64_read(&to_pnm_dev(dev)->completed));
}
static DEVICE_ATTR_RO(cmds_completed);

static ssize_t cmds_failed_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, atomic64_read(&to_pnm_dev(dev)->failed));
}
static DEVICE_ATTR_RO(cmds_failed);

static ssize_t cmds_timed_out_show(struct device *dev,
				   struct device_attribute *attr, char *buf)
{
	return pnm_emit_u64(buf, atomic64_read(&to_pnm_dev(dev)->timed_out));
}
static DEVICE_ATTR_RO(cmds_timed_out);

/* Queue resets that brought the device back after a command timed out. */
static ssize_t resets_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	return pnm_emit_u64(buf, atomic64_read(&to_pnm_dev(dev)->resets));
}
static DEVICE_ATTR_RO(resets);

static ssize_t state_show(struct device *dev, struct device_attribute *attr,
			  char *buf)
{
	return sysfs_emit(buf, "%s\n",
			  pnm_state_names[READ_ONCE(to_pnm_dev(dev)->state)]);
}
static DEVICE_ATTR_RO(state);

static struct attribute *pnm_attrs[] = {
	&dev_attr_nr_queues.attr,
	&dev_attr_queue_depth.attr,
	&dev_attr_kv_size.attr,
	&dev_attr_kv_free.attr,
	&dev_attr_hw_version.attr,
	&dev_attr_heartbeat.attr,
	&dev_attr_state.attr,
	&dev_attr_cmds_submitted.attr,
	&dev_attr_cmds_completed.attr,
	&dev_attr_cmds_failed.attr,
	&dev_attr_cmds_timed_out.attr,
	&dev_attr_resets.attr,
	NULL
};

static const struct attribute_group pnm_attr_group = {
	.attrs = pnm_attrs,
};

const struct attribute_group *pnm_attr_groups[] = {
	&pnm_attr_group,
	NULL
};

static int pnm_queues_show(struct seq_file *m, void *unused)
{
	struct pnm_dev *pnm = m->private;
	unsigned int i;

	seq_printf(m, "state %s outstanding %d heartbeat %llu resets %lld%s\n",
		   pnm_state_names[READ_ONCE(pnm->state)],
		   atomic_read(&pnm->outstanding), pnm_hw_heartbeat(pnm),
		   atomic64_read(&pnm->resets),
		   READ_ONCE(pnm->recovering) ? " recovering" : "");
	seq_puts(m, "queue sq_tail cq_head phase busy abandoned pending\n");
	for (i = 0; i < pnm->nr_queues; i++) {
		struct pnm_queue *q = &pnm->queues[i];
		u32 sq_tail, cq_head;
		unsigned int busy, abandoned, pending;
		u16 phase;

		spin_lock(&q->lock);
		sq_tail = q->sq_tail;
		busy = q->nr_busy;
		abandoned = q->nr_abandoned;
		pending = q->nr_pending;
		spin_unlock(&q->lock);
		/* Changed under cq_lock; a snapshot is enough here. */
		cq_head = READ_ONCE(q->cq_head);
		phase = READ_ONCE(q->phase);
		seq_printf(m, "%5u %7u %7u %5u %4u %9u %7u\n", i, sq_tail,
			   cq_head, phase, busy, abandoned, pending);
	}
	return 0;
}
DEFINE_SHOW_ATTRIBUTE(pnm_queues);

void pnm_debugfs_init(struct pnm_dev *pnm, struct dentry *root)
{
	pnm->debugfs = debugfs_create_dir(dev_name(&pnm->dev), root);
	debugfs_create_file("queues", 0400, pnm->debugfs, pnm,
			    &pnm_queues_fops);
}

void pnm_debugfs_exit(struct pnm_dev *pnm)
{
	debugfs_remove_recursive(pnm->debugfs);
	pnm->debugfs = NULL;
}

/* lamina-monitor: the per-container monitor as its own static executable,
 * so that each of the (many) monitors maps no shared libraries: see
 * monitor.h for what it does. */
#include "monitor/monitor.h"

int main(int argc, char **argv)
{
	return lm_monitor_main(argc, argv);
}

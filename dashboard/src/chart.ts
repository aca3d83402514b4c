import uPlot from 'uplot';

export interface Series {
  label: string;
  stroke: string;
  dash?: number[];
}

/**
 * A live per-epoch line chart (uPlot): x = epoch, one line per series, a visible point per epoch.
 * `data-points` on the container says how many epochs it shows (the browser test waits on it).
 */
export class EpochChart {
  readonly el: HTMLElement;
  private plot: uPlot | null = null;
  private readonly xs: number[] = [];
  private readonly ys: (number | null)[][];

  constructor(
    private readonly title: string,
    private readonly series: Series[],
    name: string,
  ) {
    this.el = document.createElement('div');
    this.el.className = 'chart';
    this.el.dataset.chart = name;
    this.el.dataset.points = '0';
    this.ys = series.map(() => []);
  }

  /** Adds or replaces the values of one epoch. */
  set(epoch: number, values: (number | null | undefined)[]): void {
    let i = this.xs.indexOf(epoch);
    if (i < 0) {
      i = this.xs.findIndex((x) => x > epoch);
      if (i < 0) i = this.xs.length;
      this.xs.splice(i, 0, epoch);
      this.ys.forEach((y) => y.splice(i, 0, null));
    }
    values.forEach((v, s) => (this.ys[s][i] = v ?? null));
    this.draw();
  }

  private draw(): void {
    const data = [this.xs, ...this.ys] as uPlot.AlignedData;
    if (!this.plot) {
      const width = Math.max(320, this.el.clientWidth || 540);
      this.plot = new uPlot(
        {
          title: this.title,
          width,
          height: 240,
          scales: { x: { time: false } },
          axes: [{ label: 'epoch', incrs: [1, 2, 5, 10, 20, 50, 100] }, { size: 60 }],
          series: [{ label: 'epoch' }, ...this.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, dash: s.dash, points: { show: true, size: 8, fill: s.stroke }, spanGaps: true }))],
        },
        data,
        this.el,
      );
    } else this.plot.setData(data);
    this.el.dataset.points = String(this.xs.length);
  }

  destroy(): void {
    this.plot?.destroy();
  }
}

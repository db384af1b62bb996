package report

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Series is one line (or one bar colour) of a chart.
type Series struct {
	Name string
	// Y holds one value per X; NaN means no point there.
	Y []float64
	// Dashed draws the line dashed (e.g. a second percentile of the same configuration).
	Dashed bool
	// Color is an SVG colour; empty means the palette's next one.
	Color string
}

// LineChart is a chart of several series over shared X values.
type LineChart struct {
	Title, XLabel, YLabel string
	X                     []float64
	XLog, YLog            bool
	Series                []Series
	// HLines are horizontal reference lines (e.g. a goal), labelled.
	HLines []RefLine
}

// RefLine is a labelled horizontal line.
type RefLine struct {
	Y     float64
	Label string
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

const (
	width, height                = 760, 420
	padL, padR, padT, padB       = 80, 210, 40, 60
	plotW                        = width - padL - padR
	plotH                        = height - padT - padB
	fontAttrs                    = `font-family="sans-serif" font-size="12"`
	gridColor, axisColor, bgFill = "#e0e0e0", "#333", "#ffffff"
)

type scale struct {
	lo, hi float64
	log    bool
}

func newScale(vals []float64, log, zeroBased bool) scale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if math.IsNaN(v) || math.IsInf(v, 0) || (log && v <= 0) {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	}
	if log {
		lo = math.Pow(10, math.Floor(math.Log10(lo)))
		hi = math.Pow(10, math.Ceil(math.Log10(hi)))
		if hi <= lo {
			hi = lo * 10
		}
		return scale{lo, hi, true}
	}
	if zeroBased && lo > 0 {
		lo = 0
	}
	if hi <= lo {
		hi = lo + 1
	}
	step := niceStep((hi - lo) / 5)
	hi = math.Ceil(hi/step) * step
	lo = math.Floor(lo/step) * step
	return scale{lo, hi, false}
}

// xScale spans the X values with a margin; its ticks are the X values themselves.
func xScale(xs []float64, log bool) scale {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range xs {
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if math.IsInf(lo, 1) || (log && lo <= 0) {
		return newScale(xs, log, false)
	}
	if log {
		return scale{lo / 1.4, hi * 1.4, true}
	}
	m := (hi - lo) * 0.08
	if m == 0 {
		m = 1
	}
	return scale{lo - m, hi + m, false}
}

func niceStep(raw float64) float64 {
	if raw <= 0 {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

// frac maps v into [0,1] of the scale.
func (s scale) frac(v float64) float64 {
	if s.log {
		return (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	}
	return (v - s.lo) / (s.hi - s.lo)
}

func (s scale) ticks() []float64 {
	var t []float64
	if s.log {
		for v := s.lo; v <= s.hi*1.0001; v *= 10 {
			t = append(t, v)
		}
		return t
	}
	step := niceStep((s.hi - s.lo) / 5)
	for v := s.lo; v <= s.hi+step/1000; v += step {
		t = append(t, v)
	}
	return t
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case math.Abs(v) >= 1e4:
		return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}

func svgHeader(b *strings.Builder, title string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s>`+"\n",
		width, height, width, height, fontAttrs)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="%s"/>`+"\n", bgFill)
	fmt.Fprintf(b, `<text x="%d" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", padL, html.EscapeString(title))
}

func axisLabels(b *strings.Builder, xl, yl string) {
	fmt.Fprintf(b, `<text x="%d" y="%d" text-anchor="middle">%s</text>`+"\n", padL+plotW/2, height-15, html.EscapeString(xl))
	fmt.Fprintf(b, `<text transform="translate(18,%d) rotate(-90)" text-anchor="middle">%s</text>`+"\n", padT+plotH/2, html.EscapeString(yl))
}

func legend(b *strings.Builder, names []string, colors []string, dashed []bool) {
	for i, n := range names {
		y := padT + 10 + i*20
		x := padL + plotW + 15
		dash := ""
		if dashed[i] {
			dash = ` stroke-dasharray="6,4"`
		}
		fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2.5"%s/>`+"\n", x, y, x+24, y, colors[i], dash)
		fmt.Fprintf(b, `<text x="%d" y="%d">%s</text>`+"\n", x+30, y+4, html.EscapeString(n))
	}
}

// SVG renders the chart.
func (c LineChart) SVG() string {
	var all []float64
	for _, s := range c.Series {
		all = append(all, s.Y...)
	}
	for _, h := range c.HLines {
		all = append(all, h.Y)
	}
	xs := xScale(c.X, c.XLog)
	ys := newScale(all, c.YLog, true)
	px := func(v float64) float64 { return padL + xs.frac(v)*plotW }
	py := func(v float64) float64 { return padT + (1-ys.frac(v))*plotH }

	var b strings.Builder
	svgHeader(&b, c.Title)
	for _, t := range ys.ticks() {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padL-6, y+4, fmtNum(t))
	}
	for _, t := range c.X {
		x := px(t)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, padT, x, padT+plotH, gridColor)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, padT+plotH+18, fmtNum(t))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", padL, padT, plotW, plotH, axisColor)
	for _, h := range c.HLines {
		if c.YLog && h.Y <= 0 {
			continue
		}
		y := py(h.Y)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" stroke-dasharray="2,3"/>`+"\n", padL, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#555" font-size="11">%s</text>`+"\n", padL+4, y-4, html.EscapeString(h.Label))
	}
	var names, colors []string
	var dashed []bool
	ci := 0
	for _, s := range c.Series {
		col := s.Color
		if col == "" {
			col = palette[ci%len(palette)]
			ci++
		}
		names, colors, dashed = append(names, s.Name), append(colors, col), append(dashed, s.Dashed)
		var pts []string
		flush := func() {
			if len(pts) > 1 {
				dash := ""
				if s.Dashed {
					dash = ` stroke-dasharray="6,4"`
				}
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2.5"%s points="%s"/>`+"\n", col, dash, strings.Join(pts, " "))
			}
			pts = pts[:0]
		}
		for i, v := range s.Y {
			if i >= len(c.X) || math.IsNaN(v) || (c.YLog && v <= 0) {
				flush()
				continue
			}
			x, y := px(c.X[i]), py(v)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s: %s</title></circle>`+"\n", x, y, col, html.EscapeString(s.Name), fmtNum(v))
		}
		flush()
	}
	legend(&b, names, colors, dashed)
	axisLabels(&b, c.XLabel, c.YLabel)
	b.WriteString("</svg>\n")
	return b.String()
}

// BarChart is a grouped bar chart: one group per category, one bar per series.
type BarChart struct {
	Title, YLabel string
	Categories    []string
	Series        []Series
	HLines        []RefLine
}

// SVG renders the chart.
func (c BarChart) SVG() string {
	var all []float64
	for _, s := range c.Series {
		all = append(all, s.Y...)
	}
	for _, h := range c.HLines {
		all = append(all, h.Y)
	}
	ys := newScale(all, false, true)
	py := func(v float64) float64 { return padT + (1-ys.frac(v))*plotH }
	var b strings.Builder
	svgHeader(&b, c.Title)
	for _, t := range ys.ticks() {
		y := py(t)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", padL, y, padL+plotW, y, gridColor)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", padL-6, y+4, fmtNum(t))
	}
	n := max(1, len(c.Categories))
	groupW := float64(plotW) / float64(n)
	barW := groupW * 0.8 / float64(max(1, len(c.Series)))
	var names, colors []string
	var dashed []bool
	for si, s := range c.Series {
		col := s.Color
		if col == "" {
			col = palette[si%len(palette)]
		}
		names, colors, dashed = append(names, s.Name), append(colors, col), append(dashed, false)
		for ci, v := range s.Y {
			if ci >= n || math.IsNaN(v) {
				continue
			}
			x := padL + groupW*float64(ci) + groupW*0.1 + barW*float64(si)
			y := py(v)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %s</title></rect>`+"\n",
				x, y, barW-1, float64(padT+plotH)-y, col, html.EscapeString(s.Name), fmtNum(v))
		}
	}
	for ci, cat := range c.Categories {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", padL+groupW*(float64(ci)+0.5), padT+plotH+18, html.EscapeString(cat))
	}
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="%s"/>`+"\n", padL, padT, plotW, plotH, axisColor)
	for _, h := range c.HLines {
		y := py(h.Y)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#888" stroke-dasharray="2,3"/>`+"\n", padL, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="#555" font-size="11">%s</text>`+"\n", padL+4, y-4, html.EscapeString(h.Label))
	}
	legend(&b, names, colors, dashed)
	axisLabels(&b, "", c.YLabel)
	b.WriteString("</svg>\n")
	return b.String()
}

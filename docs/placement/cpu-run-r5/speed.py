import json,sys,statistics as st
def interp(xs,ys,x):
    if x<=xs[0]: return ys[0]
    for i in range(1,len(xs)):
        if x<=xs[i] or i==len(xs)-1:
            return ys[i-1]+(ys[i]-ys[i-1])*(x-xs[i-1])/(xs[i]-xs[i-1])
def check(bench,table):
    b=json.load(open(bench)); t=json.load(open(table))
    ov=(t.get('stepOverhead') or 0)+(t.get('stepOverheadPerSequence') or 0)
    rs=[]
    out=[]
    for m,p in zip(b['models'],b['profiles']):
        e=[e for e in t['entries'] if e['model']==m][0]
        pred=interp(e['decodeContexts'],e['decodeSeconds'][0][0],24.5)+ov
        rs.append(p['decodeStep']/pred); out.append(f"{m} {p['decodeStep']*1e3:.3f}/{pred*1e3:.3f}={rs[-1]:.2f}")
    print(bench.split('/')[-1],table.split('/')[-1]," ".join(out),"median %.2f"%st.median(rs))
for a in sys.argv[1:]:
    bench,table=a.split(':'); check(bench,table)

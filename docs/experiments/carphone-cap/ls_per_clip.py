import numpy as np, sys
path,W,H,n=sys.argv[1],int(sys.argv[2]),int(sys.argv[3]),int(sys.argv[4])
C=128; hl,wl=H//16,W//16
d=np.fromfile(path,np.float32)
per=C*hl*wl+2*3*H*W
d=d.reshape(n,per)
Y=d[:,:C*hl*wl].reshape(n,C,hl,wl)
X=d[:,C*hl*wl:C*hl*wl+3*H*W].reshape(n,3,H,W)
XH=d[:,C*hl*wl+3*H*W:].reshape(n,3,H,W)
def psnr(a,b): return 10*np.log10(1/np.mean((np.clip(a,0,1)-b)**2))
def blocks(img): # n,3,H,W -> n*hl*wl, 768
    return img.reshape(n,3,hl,16,wl,16).transpose(0,2,4,1,3,5).reshape(-1,768)
def feats(Y,nb):
    if nb==1: return Y.transpose(0,2,3,1).reshape(-1,C)
    P=np.pad(Y,((0,0),(0,0),(1,1),(1,1)))
    fs=[P[:,:,i:i+hl,j:j+wl] for i in range(3) for j in range(3)]
    return np.concatenate(fs,1).transpose(0,2,3,1).reshape(-1,9*C)
print("base psnr", psnr(XH,X))
R=blocks(X-XH); 
tr=np.repeat(np.arange(n)%2==0, hl*wl); te=~tr
for nb in (1,3):
    F=feats(Y,nb); F=np.concatenate([F,np.ones((len(F),1))],1)
    A=F[tr]; 
    Wt=np.linalg.solve(A.T@A+1e-3*np.eye(A.shape[1]),A.T@R[tr])
    pred=F@Wt
    XR=XH.copy()
    Pimg=pred.reshape(n,hl,wl,3,16,16).transpose(0,3,1,4,2,5).reshape(n,3,H,W)
    XR=XH+Pimg
    m=np.arange(n)%2==1
    print("nb",nb,"test psnr before %.2f after %.2f"%(psnr(XH[m],X[m]),psnr(XR[m],X[m])), "train after %.2f"%psnr(XR[~m],X[~m]))
# pure linear from y alone
for nb in (1,3):
    F=feats(Y,nb); F=np.concatenate([F,np.ones((len(F),1))],1)
    T=blocks(X)
    Wt=np.linalg.solve(F[tr].T@F[tr]+1e-3*np.eye(F.shape[1]),F[tr].T@T[tr])
    Pimg=(F@Wt).reshape(n,hl,wl,3,16,16).transpose(0,3,1,4,2,5).reshape(n,3,H,W)
    m=np.arange(n)%2==1
    print("linear-only nb",nb,"test %.2f"%psnr(Pimg[m],X[m]))
# reduced-rank 3x3
F=feats(Y,3); F=np.concatenate([F,np.ones((len(F),1))],1)
Wt=np.linalg.solve(F[tr].T@F[tr]+1e-3*np.eye(F.shape[1]),F[tr].T@R[tr])
fit=F[tr]@Wt
U,S,Vt=np.linalg.svd(fit,full_matrices=False)
m=np.arange(n)%2==1
for r in (16,32,48,64):
    Wr=Wt@Vt[:r].T@Vt[:r]
    Pimg=(F@Wr).reshape(n,hl,wl,3,16,16).transpose(0,3,1,4,2,5).reshape(n,3,H,W)
    print("rank",r,"test %.2f"%psnr(XH[m]+Pimg[m],X[m]))

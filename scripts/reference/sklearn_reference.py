"""scikit-learn's answers for svmoe's reference tests (run by the tests through /usr/bin/python3,
Debian's python3-sklearn).

  sklearn_reference.py tfidf IN.json OUT.json
      IN: {"documents": [[token ids...], ...], "sublinear_tf": false}; OUT: {"rows": [{"token id": value, ...}, ...]}
      TfidfVectorizer with its defaults (sublinear_tf as given), on pre-tokenised documents (token ids as the terms).
  sklearn_reference.py spectral IN.json OUT.json
      IN: {"affinity": [[...]], "clusters": k, "seed": s}; OUT: {"labels": [...]}
      SpectralClustering(affinity="precomputed", assign_labels="kmeans").
  sklearn_reference.py spectral_discretize IN.json OUT.json
      the same with assign_labels="discretize" (the label assignment of the equal-size spectral
      clustering the paper cites).
"""
import json
import sys

import numpy as np
from sklearn.cluster import SpectralClustering
from sklearn.feature_extraction.text import TfidfVectorizer


def tfidf(request):
    documents = [[str(t) for t in doc] for doc in request["documents"]]
    vectorizer = TfidfVectorizer(analyzer=lambda doc: doc, lowercase=False,
                                 sublinear_tf=bool(request.get("sublinear_tf", False)))
    matrix = vectorizer.fit_transform(documents).tocsr()
    terms = {column: term for term, column in vectorizer.vocabulary_.items()}
    rows = []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        rows.append({terms[c]: float(v) for c, v in zip(matrix.indices[start:end], matrix.data[start:end])})
    return {"rows": rows}


def spectral(request, assign_labels="kmeans"):
    model = SpectralClustering(n_clusters=request["clusters"], affinity="precomputed", assign_labels=assign_labels,
                               random_state=request["seed"], n_init=10)
    labels = model.fit(np.array(request["affinity"], dtype=float)).labels_
    return {"labels": [int(x) for x in labels]}


def spectral_discretize(request):
    return spectral(request, "discretize")


if __name__ == "__main__":
    mode, source, target = sys.argv[1:4]
    with open(source, encoding="utf-8") as f:
        request = json.load(f)
    answer = {"tfidf": tfidf, "spectral": spectral, "spectral_discretize": spectral_discretize}[mode](request)
    with open(target, "w", encoding="utf-8") as f:
        json.dump(answer, f)

"""Articles from the web: fetching pages and feeds, finding the article in a page, and the folder
they are saved in.

httpx, trafilatura and feedparser are imported with the first URL, page or feed, not with this
package: reading .txt articles and answering questions never load them.
"""
